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
 * primary adds any its `node:cluster` workers would lack (see {@link withBrokerV8Flags}); a flag
 * the operator set, with any value, is kept. V8 sizes its heap from the command line only.
 *
 * `--max-semi-space-size=64` (MB; Node 20's default is 16): a larger young generation. A check
 * allocates some tens of kilobytes, nearly all dead by its answer; at a few thousand checks a
 * second the default semi-space fills several times a second, and what is alive at each
 * scavenge (requests in flight, the decision log's batch being built) is copied and, the second
 * time, promoted. The promoted garbage is what the full collections clear, and on a broker
 * sharing its core a full collection's concurrent marking takes the core from the event loop for
 * 40-100 ms. Measured with one broker pinned to one core at 2,624 checks/s (5 s rounds,
 * alternating, --trace-gc): full collections of the event loop's isolate 3 -> 1 with the log off
 * and 6 -> 3 with the NDJSON log on, rounds with a p99 over 20 ms 7 of 16 -> 1 of 16
 * (bench/README.md). The cost is memory: up to 2 x 64 MB more young generation per serving
 * process, committed only as the allocation rate needs it.
 */
export const BROKER_V8_FLAGS: readonly string[] = ['--max-semi-space-size=64'];

/** `--name` of a `--name=value` flag. */
const flagName = (flag: string): string => flag.split('=', 1)[0] as string;

/**
 * `execArgv` with every flag of {@link BROKER_V8_FLAGS} it does not set (under any value)
 * appended: what the primary starts its workers with.
 * @example cluster.setupPrimary({ execArgv: withBrokerV8Flags(process.execArgv) });
 */
export function withBrokerV8Flags(execArgv: readonly string[]): string[] {
  const set = new Set(execArgv.map(flagName));
  return [...execArgv, ...BROKER_V8_FLAGS.filter((f) => !set.has(flagName(f)))];
}
