import { describe, expect, it } from 'vitest';
import { createWardenLogger, PinoLoggerService, type WardenLoggerOptions } from './warden-logger.js';

function capture(levels?: WardenLoggerOptions['levels']) {
  const lines: string[] = [];
  const log = createWardenLogger({ levels, destination: { write: (l: string) => void lines.push(l) } });
  return { log, entries: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe(PinoLoggerService.name, () => {
  it('writes Nest logger calls as JSON lines with the level name, an ISO time, msg and context', () => {
    const { log, entries } = capture();
    const sut = new PinoLoggerService(log);
    sut.warn('datasource down', 'Broker');
    sut.error('ERR_INTERNAL: boom', 'Error: boom\n    at x', 'BrokerErrorFilter');
    sut.log('mapped a route', 'RoutesResolver');
    const [warn, error, ...rest] = entries();
    expect(warn).toMatchObject({ level: 'warn', msg: 'datasource down', context: 'Broker' });
    expect(new Date(warn?.['time'] as string).toISOString()).toBe(warn?.['time']);
    expect(error).toMatchObject({ level: 'error', msg: 'ERR_INTERNAL: boom', context: 'BrokerErrorFilter', stack: 'Error: boom\n    at x' });
    // Info is below the default level (warnings and errors).
    expect(rest).toEqual([]);
  });

  it('follows Nest log levels', () => {
    const { log, entries } = capture(['log', 'error']);
    new PinoLoggerService(log).log('ready');
    expect(entries()).toMatchObject([{ level: 'info', msg: 'ready' }]);
  });
});

describe(createWardenLogger.name, () => {
  it('censors credentials passed as log fields', () => {
    const { log, entries } = capture();
    log.warn({ token: 'eyJsecret', subject: { token: 'eyJsecret2' }, gateway: { apiKey: 'gw-secret' }, requestId: 'r1' }, 'refused');
    const [entry] = entries();
    expect(entry).toMatchObject({ token: '[redacted]', subject: { token: '[redacted]' }, gateway: { apiKey: '[redacted]' }, requestId: 'r1' });
    expect(JSON.stringify(entry)).not.toMatch(/secret/);
  });
});
