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
