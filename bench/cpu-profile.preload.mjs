// Preloaded into a broker by bench/enrichment.mjs (`node --import ./bench/cpu-profile.preload.mjs`)
// to CPU-profile one load phase only: the first SIGWINCH starts the V8 sampling profiler, the
// second stops it and writes `${BENCH_CPU_PROFILE_OUT}.<pid>.cpuprofile` (Chrome DevTools format).
// (`--cpu-prof` would profile start-up too, and writes nothing when the process ends by a signal,
// which is how the broker stops. SIGWINCH because Nest's shutdown hooks take SIGUSR2, and its
// default action is to be ignored.)
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';

const out = process.env.BENCH_CPU_PROFILE_OUT;
if (out !== undefined && out !== '') {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 }); // µs
  let running = false;
  process.on('SIGWINCH', () => {
    if (!running) {
      running = true;
      void session.post('Profiler.start');
      return;
    }
    running = false;
    void session.post('Profiler.stop').then(({ profile }) => {
      writeFileSync(`${out}.${process.pid}.cpuprofile`, JSON.stringify(profile));
    });
  });
}
