/** Types of `scripts/demo.mjs` for the test that runs it. */
export interface DemoRow {
  scenario: string;
  caller: string;
  request: string;
  expected: string;
  decision: string;
  reason: string;
}
export declare const SCENARIOS: ReadonlyArray<{ name: string; steps: readonly unknown[] }>;
export declare function runDemo(base: string): Promise<DemoRow[]>;
