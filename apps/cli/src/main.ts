/**
 * `warden`: the command line for policy authors, modelled on `cerbos compile`.
 *
 *   warden policies validate DIR                 compile only; print each error as `file:line:col message`
 *   warden policies test DIR [--output tree|json|junit] [--run REGEX] [--verbose] [--strict-evaluation]
 *   warden audit tail [--follow] [-n N] [filters]     the decision log of a running broker (audit-tail.ts)
 *
 * Exit codes follow `cerbos compile` (checked against the 0.55 binary): 0 success, 1 the directory
 * cannot be read, 3 compilation failed, 4 tests failed or errored, 80 bad usage.
 * This is the only place the policy tooling touches the file system: it reads the tree and hands
 * text to `@warden/decision`.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { pathToFileURL } from 'node:url';
import { classifyPolicyPath, compilePolicies, createEngine, renderJunit, renderTestTree, runPolicyTests } from '@warden/decision';
import type { CompileDiagnostic, PolicyFile, PolicyTestFile, SchemaFile } from '@warden/decision';
import { runAuditTail, type AuditTailIo } from './audit-tail.js';

/** Process exit codes, as `cerbos compile` uses them. */
export const EXIT = Object.freeze({ ok: 0, readFailure: 1, compileFailure: 3, testFailure: 4, usage: 80 });

const USAGE = `Usage:
  warden policies validate <dir>
  warden policies test <dir> [--output tree|json|junit] [--run <regex>] [--verbose] [--strict-evaluation]
  warden audit tail [--follow] [-n N] [--subject ID] [--agent ID] [--resource KIND[/ID]] [--decision ALLOW|DENY] (see \`warden audit tail --help\`)

Exit codes: 0 ok, 1 unreadable directory, 3 compilation failed, 4 tests failed, 80 bad usage`;

type OutputFormat = 'tree' | 'json' | 'junit';

interface Invocation {
  command: 'validate' | 'test';
  dir: string;
  output: OutputFormat;
  run?: string;
  verbose: boolean;
  strictEvaluation: boolean;
}

/** Where the command writes. Injected so tests can run the CLI in-process. */
export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** `audit tail --follow` stops when this aborts (default: on SIGINT). */
  signal?: AbortSignal;
  env?: AuditTailIo['env'];
}

const processIo: CliIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

class UsageError extends Error {}

function parseArgs(argv: readonly string[]): Invocation {
  const positional: string[] = [];
  let output: OutputFormat = 'tree';
  let run: string | undefined;
  let verbose = false;
  let strictEvaluation = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new UsageError(`flag ${flag} needs a value`);
      return v;
    };
    switch (flag) {
      case '--output':
      case '-o': {
        const v = value();
        if (v !== 'tree' && v !== 'json' && v !== 'junit') throw new UsageError(`--output must be one of tree, json, junit (got \`${v}\`)`);
        output = v;
        break;
      }
      case '--run':
        run = value();
        break;
      case '--verbose':
        verbose = true;
        break;
      case '--strict-evaluation':
        strictEvaluation = true;
        break;
      default:
        if (arg.startsWith('-')) throw new UsageError(`unknown flag ${arg}`);
        positional.push(arg);
    }
  }
  const [group, command, dir, ...rest] = positional;
  if (group !== 'policies' || (command !== 'validate' && command !== 'test') || dir === undefined || rest.length > 0) {
    throw new UsageError('expected `policies validate <dir>` or `policies test <dir>`');
  }
  return { command, dir, output, ...(run !== undefined ? { run } : {}), verbose, strictEvaluation };
}

interface PolicyTree {
  policies: PolicyFile[];
  schemas: SchemaFile[];
  testFiles: PolicyTestFile[];
}

/** Reads every file under `dir`, sorted into policies, schemas and test files (suites and fixtures). */
function readPolicyTree(dir: string): PolicyTree {
  const tree: PolicyTree = { policies: [], schemas: [], testFiles: [] };
  const visit = (current: string): void => {
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      const full = join(current, entry.name);
      if (entry.isDirectory()) {
        if (!entry.name.startsWith('.')) visit(full);
        continue;
      }
      if (!entry.isFile() && !statSync(full).isFile()) continue;
      const path = relative(dir, full).split(sep).join('/');
      const kind = classifyPolicyPath(path);
      if (kind === 'policy') tree.policies.push({ path, text: readFileSync(full, 'utf8') });
      else if (kind === 'schema') tree.schemas.push({ path: path.slice('_schemas/'.length), text: readFileSync(full, 'utf8') });
      else if (/\.(ya?ml|json)$/i.test(path) && !path.startsWith('_schemas/')) tree.testFiles.push({ path, text: readFileSync(full, 'utf8') });
    }
  };
  visit(dir);
  return tree;
}

function formatDiagnostic(d: CompileDiagnostic): string {
  return `${d.file}:${d.line}:${d.column} ${d.message}`;
}

/** `warden audit tail …`: talks to a running broker, so it is the one asynchronous command. */
function runAudit(argv: readonly string[], io: CliIo): Promise<number> {
  if (argv[0] !== 'tail') {
    io.stderr(`warden: error: expected \`audit tail\`\n\n${USAGE}\n`);
    return Promise.resolve(EXIT.usage);
  }
  let signal = io.signal;
  if (signal === undefined) {
    const stop = new AbortController();
    process.once('SIGINT', () => stop.abort());
    signal = stop.signal;
  }
  return runAuditTail(argv.slice(1), { ...io, signal });
}

/** Runs the CLI and returns the exit code (a promise for `audit tail`). */
export function runCli(argv: readonly string[], io: CliIo = processIo): number | Promise<number> {
  if (argv[0] === 'audit') return runAudit(argv.slice(1), io);
  let inv: Invocation;
  try {
    inv = parseArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr(`warden: error: ${err.message}\n\n${USAGE}\n`);
      return EXIT.usage;
    }
    throw err;
  }

  let tree: PolicyTree;
  try {
    if (!statSync(inv.dir).isDirectory()) throw new Error(`\`${inv.dir}\` is not a directory`);
    tree = readPolicyTree(inv.dir);
  } catch (err) {
    io.stderr(`warden: error: cannot read policy directory: ${(err as Error).message}\n`);
    return EXIT.readFailure;
  }

  const { policySet, errors } = compilePolicies(tree.policies, { schemas: tree.schemas });
  if (errors.length > 0 || policySet === undefined) {
    io.stderr(`${errors.map(formatDiagnostic).join('\n')}\nwarden: error: failed to compile\n`);
    return EXIT.compileFailure;
  }
  if (inv.command === 'validate') return EXIT.ok;

  let results;
  try {
    results = runPolicyTests(tree.testFiles, {
      createChecker: (config) => createEngine(policySet, config),
      baseConfig: { strictEvaluation: inv.strictEvaluation },
      ...(inv.run !== undefined ? { includedTestNamesRegexp: inv.run } : {}),
    });
  } catch (err) {
    io.stderr(`warden: error: ${(err as Error).message}\n`);
    return EXIT.usage;
  }

  switch (inv.output) {
    case 'json':
      io.stdout(`${JSON.stringify(results, null, 2)}\n`);
      break;
    case 'junit':
      io.stdout(`${renderJunit(results, { verbose: inv.verbose })}\n`);
      break;
    case 'tree':
      io.stdout(`${renderTestTree(results, { verbose: inv.verbose })}\n`);
      break;
  }
  const overall = results.summary.overallResult;
  if (overall === 'RESULT_FAILED' || overall === 'RESULT_ERRORED') {
    io.stderr('warden: error: tests failed\n');
    return EXIT.testFailure;
  }
  return EXIT.ok;
}

const invokedDirectly = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
if (invokedDirectly) {
  process.exitCode = await runCli(process.argv.slice(2));
}
