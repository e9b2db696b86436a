/**
 * The Dockerfile passes BuildKit's own build checks (the rules `docker build --check` runs), through
 * test/tools/dockerfile-check built from the Go module proxy; and that checker does find problems.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ensureTool } from '../../scripts/tools.ts';
import { REPO } from './helm.ts';

async function check(file: string): Promise<{ ok: boolean; output: string }> {
  const bin = await ensureTool('dockerfile-check');
  try {
    const { stdout } = await promisify(execFile)(bin, [file]);
    return { ok: true, output: stdout };
  } catch (err) {
    return { ok: false, output: (err as { stdout?: string }).stdout ?? String(err) };
  }
}

describe('Dockerfile lint (BuildKit build checks, offline)', () => {
  it('finds nothing in the Dockerfile', async () => {
    const r = await check(join(REPO, 'Dockerfile'));
    expect(r.output).toContain('no findings');
    expect(r.ok).toBe(true);
  }, 600_000);

  it('reports the rules a bad Dockerfile breaks', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'agentenv-dockerfile-'));
    try {
      const file = join(dir, 'Dockerfile');
      await writeFile(file, 'FROM node:24 as Build\nARG API_TOKEN=x\nENV FOO $BAR\nCMD node main.js\n');
      const r = await check(file);
      expect(r.ok).toBe(false);
      for (const rule of ['FromAsCasing', 'StageNameCasing', 'SecretsUsedInArgOrEnv', 'UndefinedVar', 'LegacyKeyValueFormat', 'JSONArgsRecommended']) {
        expect(r.output).toContain(rule);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 600_000);
});
