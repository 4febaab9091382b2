import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BROKER_V8_FLAGS, withBrokerV8Flags } from './v8-tiering.js';

const ROOT = join(import.meta.dirname, '../../..');

describe('withBrokerV8Flags', () => {
  it('appends the flags a worker would lack, keeping the primary\'s own first', () => {
    expect(withBrokerV8Flags(['--max-old-space-size=512'])).toEqual(['--max-old-space-size=512', ...BROKER_V8_FLAGS]);
  });

  it('adds none twice', () => {
    expect(withBrokerV8Flags([...BROKER_V8_FLAGS, '--inspect'])).toEqual([...BROKER_V8_FLAGS, '--inspect']);
  });

  it('keeps a value the operator chose for one of them', () => {
    expect(withBrokerV8Flags(['--max-semi-space-size=8'])).toEqual(['--max-semi-space-size=8']);
  });
});

describe('the documented start commands', () => {
  // V8 takes these flags only on the command line: a start command that drops one runs the broker
  // without it, silently.
  it('`npm start` passes every flag', () => {
    const start = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: { start: string } }).scripts.start.split(' ');
    for (const flag of BROKER_V8_FLAGS) expect(start).toContain(flag);
  });

  it('the Dockerfile\'s CMD passes every flag', () => {
    const cmd = /^CMD (\[.*\])$/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))?.[1];
    expect(cmd).toBeDefined();
    const argv = JSON.parse(cmd as string) as string[];
    for (const flag of BROKER_V8_FLAGS) expect(argv).toContain(flag);
  });
});
