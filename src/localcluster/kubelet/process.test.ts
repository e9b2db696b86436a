import { execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { envFileContent, mountScript, processStartTicks, stageDir, STAGE_CANDIDATES } from './process.ts';

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

describe('the mount script', () => {
  it('stages outside every mountPath', () => {
    expect(stageDir([{ source: '/s', target: '/tmp', readOnly: false }])).toBe(STAGE_CANDIDATES[0]);
    expect(stageDir([{ source: '/s', target: '/run', readOnly: false }])).toBe(STAGE_CANDIDATES[1]);
    expect(() => stageDir([{ source: '/s', target: '/', readOnly: false }])).toThrow(/staging/);
  });

  it('binds back only the host paths a mountPath hides', () => {
    const script = mountScript('/stage', [{ source: '/k/pods/v', target: '/tmp', readOnly: false }], ['/tmp/repo/', '/work/node']);
    expect(script).toContain(`mount --bind '/tmp/repo' '/stage/h0'`);
    expect(script).not.toContain(`'/work/node'`);
  });

  // Seen when the repository was cloned under /tmp: the chart's operator Pod mounts an emptyDir at
  // /tmp, which hid the repository (the "image"), its run files and its other volumes' sources.
  it('a volume mounted over the directory holding the run files, the repository and the other volumes\' sources hides none of them', async () => {
    const base = await mkdtemp(join(tmpdir(), 'kubelet-mounts-'));
    try {
      const host = join(base, 'host');
      await mkdir(join(host, 'repo'), { recursive: true });
      await mkdir(join(host, 'run'), { recursive: true });
      await mkdir(join(host, 'volumes', 'empty'), { recursive: true });
      await mkdir(join(host, 'volumes', 'data'), { recursive: true });
      await writeFile(join(host, 'repo', 'marker'), 'image file\n');
      await writeFile(join(host, 'volumes', 'data', 'item'), 'volume file\n');
      await writeFile(join(host, 'run', 'env'), envFileContent({ GREETING: 'env file' }));
      const mounts = [
        { source: join(host, 'volumes', 'empty'), target: host, readOnly: false },
        { source: join(host, 'volumes', 'data'), target: join(host, 'data'), readOnly: true },
      ];
      const stage = stageDir(mounts);
      await mkdir(stage, { recursive: true });
      const script = mountScript(stage, mounts, [join(host, 'run'), join(host, 'repo')]);
      const command = `cat "${host}/repo/marker" "${host}/data/item"; echo "$GREETING"; ls "${host}"; ls ${stage} 2>&1 | wc -l; touch "${host}/data/x" 2>/dev/null || echo read-only`;
      const out = execFileSync('unshare', ['--mount', '--propagation', 'private', '--', '/bin/sh', '-c', script, 'container', join(host, 'run', 'pid'), join(host, 'run', 'env'), '/', '--', '/bin/sh', '-c', command], { env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } }).toString();
      expect(out.split('\n')).toEqual(['image file', 'volume file', 'env file', 'data', 'repo', 'run', '0', 'read-only', '']);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});
