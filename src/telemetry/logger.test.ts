import { describe, expect, it } from 'vitest';
import { createLogger } from './logger.ts';

function capture(): { lines: string[]; destination: { write(s: string): void } } {
  const lines: string[] = [];
  return { lines, destination: { write: (s: string) => void lines.push(s) } };
}

describe('createLogger', () => {
  it('redacts credential fields at the top level and nested', () => {
    const { lines, destination } = capture();
    const log = createLogger({ destination });
    log.info({ apiKey: 'sk-ant-api-1', headers: { authorization: 'Bearer sk-ant-oat01-x', 'x-api-key': 'sk-2' }, work: { secret: 'eyJ' } }, 'calling');
    const out = lines.join('');
    expect(out).not.toContain('sk-ant-api-1');
    expect(out).not.toContain('sk-ant-oat01-x');
    expect(out).not.toContain('sk-2');
    expect(out).not.toContain('eyJ');
    expect(out).toContain('[redacted]');
  });

  it('writes the level as a label and binds base fields', () => {
    const { lines, destination } = capture();
    createLogger({ destination, base: { process: 'operator' } }).warn('hello');
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({ level: 'warn', process: 'operator', msg: 'hello' });
  });
});
