#!/usr/bin/env node
// The `warden` command. In a source checkout (libs/ and @swc/core present) it runs the TypeScript
// sources directly: this file registers itself as a Node module hook that maps the `@warden/*`
// aliases to libs/*/src and transpiles `.ts` on load with swc, so no build step is needed and the
// code is never stale. Elsewhere it runs the build output of `npx nest build cli`.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire, register } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HOOKS_QUERY = '?warden-ts-hooks';
const root = new URL('../', import.meta.url);
const aliases = {
  '@warden/core': new URL('libs/core/src/index.ts', root).href,
  '@warden/decision': new URL('libs/decision/src/index.ts', root).href,
};

// ---- module hooks (run in Node's loader thread when this file is registered with HOOKS_QUERY) ----
let swc;
export async function resolve(specifier, context, nextResolve) {
  const alias = aliases[specifier];
  if (alias !== undefined) return { url: alias, shortCircuit: true };
  if (context.parentURL?.endsWith('.ts') && (specifier.startsWith('./') || specifier.startsWith('../')) && specifier.endsWith('.js')) {
    const asTs = new URL(specifier.slice(0, -3) + '.ts', context.parentURL);
    if (!existsSync(new URL(specifier, context.parentURL)) && existsSync(asTs)) return { url: asTs.href, shortCircuit: true };
  }
  return nextResolve(specifier, context);
}

export async function load(url, context, nextLoad) {
  if (!url.endsWith('.ts')) return nextLoad(url, context);
  swc ??= createRequire(import.meta.url)('@swc/core');
  const filename = fileURLToPath(url);
  const { code } = swc.transformSync(readFileSync(filename, 'utf8'), {
    filename,
    jsc: { parser: { syntax: 'typescript', decorators: true }, target: 'es2022', transform: { decoratorMetadata: true, legacyDecorator: true } },
    module: { type: 'es6' },
    sourceMaps: 'inline',
  });
  return { format: 'module', source: code, shortCircuit: true };
}

// ---- entry point ----
if (!import.meta.url.endsWith(HOOKS_QUERY)) {
  const sourceEntry = new URL('apps/cli/src/main.ts', root);
  const distEntry = new URL('dist/apps/cli/apps/cli/src/main.js', root);
  let entry;
  if (existsSync(sourceEntry) && canLoadSwc()) {
    register(new URL(HOOKS_QUERY, import.meta.url).href.replace(/\?.*$/, '') + HOOKS_QUERY);
    entry = sourceEntry;
  } else if (existsSync(distEntry)) {
    entry = distEntry;
  } else {
    process.stderr.write('warden: the CLI is not built; run `npx nest build cli`\n');
    process.exit(1);
  }
  const { runCli } = await import(entry.href);
  // `warden … | head` closes the pipe early: stop quietly instead of crashing on EPIPE.
  process.stdout.on('error', (err) => {
    if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw err;
  });
  process.exitCode = await runCli(process.argv.slice(2));
}

function canLoadSwc() {
  try {
    createRequire(import.meta.url)('@swc/core');
    return true;
  } catch {
    return false;
  }
}
