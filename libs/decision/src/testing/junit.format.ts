/**
 * Renders {@link TestResults} as JUnit XML exactly as `cerbos compile --test-output=junit` does:
 * one `<testcase>` per action (classname `principal.resource.action`), Cerbos's messages, counts and
 * element order, two-space indentation and Go's XML escaping.
 */
import type { TestResults, TestSuiteResult } from './test-results.types.js';
import { renderCompactJson } from './json-value.format.js';

const SKIP_TEST_CASE_MESSAGE = 'This test was skipped';
const SKIP_TEST_SUITE_MESSAGE = 'This test suite was skipped';

/** Options of {@link renderJunit}. */
export interface JunitOptions {
  /** Also mark skipped suites with a `<skipped>` element (Cerbos's `--verbose`). */
  verbose?: boolean;
}

/** Renders the JUnit report (no trailing newline, as Cerbos prints it). */
export function renderJunit(results: TestResults, options: JunitOptions = {}): string {
  let errors = 0;
  let skipped = 0;
  const suites: XmlElement[] = [];
  for (const s of results.suites ?? []) {
    const counts = { errors: 0, failures: 0, skipped: 0 };
    const children: XmlElement[] = [];
    const testCases: XmlElement[] = [];
    switch (s.summary.overallResult) {
      case 'RESULT_ERRORED':
        children.push(el('error', [['type', 'RESULT_ERRORED']], [], s.error ?? ''));
        counts.errors++;
        errors++;
        break;
      case 'RESULT_SKIPPED':
        if (options.verbose === true) children.push(el('skipped', [['message', SKIP_TEST_SUITE_MESSAGE]]));
        counts.skipped++;
        skipped++;
        break;
      default:
        testCases.push(...renderTestCases(s, counts));
    }
    children.push(el('properties', []));
    children.push(...testCases);
    const attrs: Array<[string, string]> = [];
    if (s.description) attrs.push(['description', s.description]);
    attrs.push(['name', s.name], ['file', s.file], ...countAttrs(counts), ['tests', String(s.summary.testsCount ?? 0)]);
    suites.push(el('testsuite', attrs, children));
  }

  let failures = 0;
  for (const tally of results.summary.resultCounts ?? []) {
    if (tally.result === 'RESULT_ERRORED') errors += tally.count;
    else if (tally.result === 'RESULT_FAILED') failures = tally.count;
    else if (tally.result === 'RESULT_SKIPPED') skipped += tally.count;
  }
  const root = el('testsuites', [...countAttrs({ errors, failures, skipped }), ['tests', String(results.summary.testsCount ?? 0)]], suites);
  return renderXml(root, '');
}

function countAttrs(c: { errors: number; failures: number; skipped: number }): Array<[string, string]> {
  return [
    ['errors', String(c.errors)],
    ['failures', String(c.failures)],
    ['skipped', String(c.skipped)],
  ];
}

function renderTestCases(s: TestSuiteResult, counts: { errors: number; failures: number; skipped: number }): XmlElement[] {
  const out: XmlElement[] = [];
  for (const tc of s.testCases ?? []) {
    for (const p of tc.principals) {
      for (const r of p.resources) {
        for (const a of r.actions) {
          const children: XmlElement[] = [];
          const d = a.details;
          switch (d.result) {
            case 'RESULT_SKIPPED':
              counts.skipped++;
              children.push(el('skipped', [['message', SKIP_TEST_CASE_MESSAGE]]));
              break;
            case 'RESULT_FAILED': {
              counts.failures++;
              const inner: XmlElement[] = [];
              const outputs = d.failure.outputs ?? [];
              if (outputs.length > 0) {
                inner.push(
                  el(
                    'outputs',
                    [],
                    outputs.map((o) => {
                      if ('mismatched' in o) return outputEl(o.src, renderCompactJson(o.mismatched.expected), renderCompactJson(o.mismatched.actual));
                      if ('missing' in o) return outputEl(o.src, renderCompactJson(o.missing.expected), '');
                      return outputEl(o.src, renderCompactJson(o.errored.expected), failedOutput(o.errored.error));
                    }),
                  ),
                );
              }
              inner.push(el('actual', [], [], d.failure.actual), el('expected', [], [], d.failure.expected));
              const message = outputs.length > 0 ? 'Output expectation unsatisfied' : 'Effect expectation unsatisfied';
              children.push(el('failure', [['type', 'RESULT_FAILED'], ['message', message]], inner));
              break;
            }
            case 'RESULT_ERRORED':
              counts.errors++;
              children.push(el('error', [['type', 'RESULT_ERRORED']], [], d.error));
              break;
            case 'RESULT_PASSED': {
              const inner: XmlElement[] = [];
              const outputs = d.success.outputs ?? [];
              if (outputs.length > 0) {
                inner.push(
                  el(
                    'outputs',
                    [],
                    outputs.map((o) =>
                      o.error !== undefined
                        ? outputEl(o.src, 'null', failedOutput(o.error))
                        : outputEl(o.src, renderCompactJson(o.val ?? null), renderCompactJson(o.val ?? null)),
                    ),
                  ),
                );
              }
              inner.push(el('actual', [], [], d.success.effect), el('expected', [], [], d.success.effect));
              children.push(el('success', [['type', 'RESULT_PASSED']], inner));
              break;
            }
          }
          children.push(
            el('properties', [], [el('property', [['name', 'principal']], [], p.name), el('property', [['name', 'resource']], [], r.name), el('property', [['name', 'action']], [], a.name)]),
          );
          out.push(el('testcase', [['file', s.file], ['classname', `${p.name}.${r.name}.${a.name}`], ['name', tc.name]], children));
        }
      }
    }
  }
  return out;
}

function failedOutput(error: string): string {
  return `Failed to evaluate output expression: ${error}`;
}

function outputEl(src: string, expected: string, actual: string): XmlElement {
  return el('output', [['src', src]], [el('expected', [], [], undefined, expected), el('actual', [], [], undefined, actual)]);
}

interface XmlElement {
  name: string;
  attrs: Array<[string, string]>;
  children: XmlElement[];
  text?: string;
  cdata?: string;
}

function el(name: string, attrs: Array<[string, string]>, children: XmlElement[] = [], text?: string, cdata?: string): XmlElement {
  const e: XmlElement = { name, attrs, children };
  if (text !== undefined) e.text = text;
  if (cdata !== undefined) e.cdata = cdata;
  return e;
}

function renderXml(e: XmlElement, indent: string): string {
  const attrs = e.attrs.map(([k, v]) => ` ${k}="${escapeXml(v)}"`).join('');
  const open = `${indent}<${e.name}${attrs}>`;
  if (e.children.length === 0) {
    let body = '';
    if (e.text !== undefined) body = escapeXml(e.text);
    else if (e.cdata !== undefined && e.cdata !== '') body = `<![CDATA[${e.cdata.replaceAll(']]>', ']]]]><![CDATA[>')}]]>`;
    return `${open}${body}</${e.name}>`;
  }
  const inner = e.children.map((c) => renderXml(c, `${indent}  `)).join('\n');
  return `${open}\n${inner}\n${indent}</${e.name}>`;
}

/** Go's `xml.EscapeText`. */
function escapeXml(s: string): string {
  return s.replace(/[&<>"'\t\n\r]/g, (c) => XML_ESCAPES[c] ?? c);
}

const XML_ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&#34;',
  "'": '&#39;',
  '\t': '&#x9;',
  '\n': '&#xA;',
  '\r': '&#xD;',
};
