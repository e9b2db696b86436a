import { execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { envFileContent, processStartTicks } from './process.ts';

describe('the environment file a container sources before exec', () => {
  it('round-trips any value through /bin/sh exactly, and drops names the shell cannot export', async () => {
    const env = { PLAIN: 'x', QUOTES: `it's "quoted"`, DOLLAR: '$HOME $(id) `id`', NEWLINE: 'a\nb', EMPTY: '', 'not-valid': 'dropped', 'a.b': 'dropped' };
    const dir = await mkdtemp(join(tmpdir(), 'kubelet-env-'));
    try {
      await writeFile(join(dir, 'env'), envFileContent(env));
      const out = execFileSync('/bin/sh', ['-c', `. "$1"; exec env -0`, 'sh', join(dir, 'env')], { env: {} }).toString();
      const seen = Object.fromEntries(out.split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
      delete seen['PWD'];
      expect(seen).toEqual({ PLAIN: 'x', QUOTES: `it's "quoted"`, DOLLAR: '$HOME $(id) `id`', NEWLINE: 'a\nb', EMPTY: '' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('process start times (pid reuse guard)', () => {
  it('reads field 22 of /proc/<pid>/stat, and nothing for a pid that does not exist', async () => {
    const ticks = await processStartTicks(process.pid);
    expect(ticks).toMatch(/^\d+$/);
    expect(await processStartTicks(process.pid)).toBe(ticks);
    expect(await processStartTicks(2 ** 22 + 1)).toBeUndefined();
  });
});
