/**
 * How soon V8 optimises the broker's code. V8 compiles a function with its optimising compiler
 * (TurboFan) once the function has executed about its "interrupt budget" worth of bytecode (67,584
 * bytes in Node 20), and waits again after each change of type feedback. Under a steady load
 * that happens within a second; a gateway sending a few dozen checks a second, each waiting on
 * its resolvers, can run for minutes on interpreted and baseline code. Measured on the fan-out of
 * `bench/enrichment.mjs` (four 20 ms `http` resolvers, sequential checks): the broker spent
 * 2.9-3.2 ms of CPU per check with V8's budget and 2.5 ms with 8,000 (bench/README.md).
 */
import { setFlagsFromString } from 'node:v8';

/** The budget the serving processes run with unless `WARDEN_V8_INTERRUPT_BUDGET` says otherwise. */
export const DEFAULT_V8_INTERRUPT_BUDGET = 8_000;

/**
 * Sets V8's interrupt budget for this process (functions compiled from now on, and every function
 * at its next budget reset); 0 leaves V8's own. Call it before the app is built.
 * @example applyV8InterruptBudget(config.v8InterruptBudget);
 */
export function applyV8InterruptBudget(budget: number): void {
  if (budget > 0) setFlagsFromString(`--interrupt-budget=${budget}`);
}

/**
 * V8 flags every serving process runs with: `npm start` and the Dockerfile pass them, and the
 * primary adds any that are missing to its `node:cluster` workers (see {@link withBrokerV8Flags}).
 * V8 takes them only on the command line (`--single-threaded-gc` set at run time aborts the
 * process at its next collection).
 *
 * `--single-threaded-gc`: each isolate collects its garbage on its own thread. By default V8 hands
 * parts of every collection (parallel scavenges, concurrent marking and sweeping) to a pool of
 * helper threads shared by all isolates of the process and running at the process's priority.
 * The decision log's writer runs in a worker thread at a lower priority (`audit-worker.ts`), so
 * that an arriving check preempts it; its collections did not: they ran on those helpers, beside
 * the event loop. With one broker pinned to one core (bench:audit), those were the 40-70 ms
 * stalls of the log-on brokers' worst rounds; with the flag the writer's collections stay on its
 * own low-priority thread. The helpers add nothing where the workers already use every core
 * (one per core, the recommended size): they only take cores from the other workers' event
 * loops. Measured in bench/README.md (decision log).
 */
export const BROKER_V8_FLAGS: readonly string[] = ['--single-threaded-gc'];

/**
 * `execArgv` with every flag of {@link BROKER_V8_FLAGS} it does not hold appended: what the
 * primary starts its workers with.
 * @example cluster.setupPrimary({ execArgv: withBrokerV8Flags(process.execArgv) });
 */
export function withBrokerV8Flags(execArgv: readonly string[]): string[] {
  return [...execArgv, ...BROKER_V8_FLAGS.filter((f) => !execArgv.includes(f))];
}
