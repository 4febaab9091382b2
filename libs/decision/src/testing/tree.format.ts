/**
 * Renders {@link TestResults} as the readable tree `cerbos compile` prints by default: suite → test →
 * principal → resource → action. Without `verbose` only actions that did not pass are shown (plus a
 * one-line entry for each suite); with it every action appears with its effect and outputs.
 */
import type { TestDetails, TestResult, TestResults, TestResultsSummary } from './test-results.types.js';
import { renderSpacedJson } from './json-value.format.js';

/** Options of {@link renderTestTree}. */
export interface TreeOptions {
  verbose?: boolean;
}

interface TreeNode {
  label: string;
  children: TreeNode[];
}

const LABELS: Readonly<Record<TestResult, string>> = {
  RESULT_UNSPECIFIED: 'UNKNOWN',
  RESULT_SKIPPED: 'SKIPPED',
  RESULT_PASSED: 'OK',
  RESULT_FAILED: 'FAILED',
  RESULT_ERRORED: 'ERROR',
};

/** Renders the tree and the `N tests executed` footer (no trailing newline). */
export function renderTestTree(results: TestResults, options: TreeOptions = {}): string {
  const verbose = options.verbose === true;
  const suites: TreeNode[] = [];
  for (const s of results.suites ?? []) {
    const title = `${s.name} (${s.file})`;
    if (s.summary.overallResult === 'RESULT_ERRORED' && s.error !== undefined) {
      suites.push({ label: `${title} [ERROR]`, children: [leaf(s.error)] });
      continue;
    }
    if (s.summary.overallResult === 'RESULT_SKIPPED' && (s.testCases ?? []).length === 0) {
      if (verbose) suites.push(leaf(`${title} [SKIPPED]`));
      continue;
    }
    const tests: TreeNode[] = [];
    for (const tc of s.testCases ?? []) {
      const principals: TreeNode[] = [];
      for (const p of tc.principals) {
        const resources: TreeNode[] = [];
        for (const r of p.resources) {
          const actions = r.actions
            .filter((a) => verbose || a.details.result !== 'RESULT_PASSED')
            .map((a) => ({ label: `${a.name} [${LABELS[a.details.result]}]`, children: detailNodes(a.details, verbose) }));
          if (actions.length > 0) resources.push({ label: r.name, children: actions });
        }
        if (resources.length > 0) principals.push({ label: p.name, children: resources });
      }
      if (principals.length > 0) tests.push({ label: tc.name, children: principals });
    }
    suites.push({ label: `${title}${tallies(s.summary)}`, children: tests });
  }
  const lines = ['Test results'];
  suites.forEach((node, i) => draw(node, '', i === suites.length - 1, lines));
  lines.push('', `${results.summary.testsCount ?? 0} tests executed${tallies(results.summary)}`);
  return lines.join('\n');
}

function tallies(summary: TestResultsSummary): string {
  return (summary.resultCounts ?? []).map((t) => ` [${t.count} ${LABELS[t.result]}]`).join('');
}

function detailNodes(d: TestDetails, verbose: boolean): TreeNode[] {
  switch (d.result) {
    case 'RESULT_PASSED': {
      if (!verbose) return [];
      const nodes = [leaf(`RESULT: ${d.success.effect}`)];
      const outputs = d.success.outputs ?? [];
      if (outputs.length > 0) {
        nodes.push({
          label: 'OUTPUTS:',
          children: outputs.map((o) => ({
            label: o.src,
            children: [leaf(o.error !== undefined ? `ERROR: ${o.error}` : renderSpacedJson(o.val ?? null))],
          })),
        });
      }
      return nodes;
    }
    case 'RESULT_FAILED': {
      const outputs = d.failure.outputs ?? [];
      if (outputs.length === 0) return [leaf(`OUTCOME: expected: ${d.failure.expected}, actual: ${d.failure.actual}`)];
      return [
        {
          label: 'OUTCOME: output expectation unsatisfied',
          children: outputs.map((o) => {
            if ('mismatched' in o) {
              return { label: o.src, children: [leaf(`EXPECTED: ${renderSpacedJson(o.mismatched.expected)}`), leaf(`ACTUAL: ${renderSpacedJson(o.mismatched.actual)}`)] };
            }
            if ('missing' in o) return { label: o.src, children: [leaf(`EXPECTED: ${renderSpacedJson(o.missing.expected)}`), leaf('ACTUAL: MISSING')] };
            return { label: o.src, children: [leaf(`EXPECTED: ${renderSpacedJson(o.errored.expected)}`), leaf(`ACTUAL: ERROR: ${o.errored.error}`)] };
          }),
        },
      ];
    }
    case 'RESULT_ERRORED':
      return [leaf(`ERROR: ${d.error}`)];
    case 'RESULT_SKIPPED':
      return [];
  }
}

function leaf(label: string): TreeNode {
  return { label, children: [] };
}

function draw(node: TreeNode, prefix: string, last: boolean, lines: string[]): void {
  const branch = last ? '└─' : '├─';
  lines.push(`${prefix}${branch}${node.children.length > 0 ? '┬' : '─'}${node.label}`);
  const childPrefix = `${prefix}${last ? '  ' : '│ '}`;
  node.children.forEach((child, i) => draw(child, childPrefix, i === node.children.length - 1, lines));
}
