/**
 * Sidecar memory: resident set size of the real sidecar holding a lease (against an emulator in
 * another process) next to a bare `node -e "setInterval(()=>{},1e3)"`, measured side by side in
 * the same run. Target: sidecar ≤ 1.35 × bare (node:http and the proxy included; issue 17).
 *
 * The sidecar runs as a session Pod runs it: `SIDECAR_COMMAND` (src/sessions/objects/pod.ts), Node with
 * interpreter-only flags on the bundled CommonJS sidecar that `npm run build` writes to
 * dist/sidecar.cjs (rebuilt here first). For reading the figures, the same `run()` is also measured
 * as `agentenv sidecar` through the compiled ES-module CLI (`tsc -p tsconfig.build.json`, here into
 * .bench/dist): the difference is what the bundle saves.
 *
 * Each sidecar serves its proxy (idle here; `bench/proxy.ts` measures it busy) beside an idle
 * process standing in for the main container.
 *
 * RSS is read from /proc/<pid>/status (VmRSS) after the processes have settled (the sidecar has
 * claimed and renewed its lease), as the median of several samples.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { SIDECAR_COMMAND } from '../src/sessions/objects/pod.ts';
import { startEmulatorProcess } from './support.ts';

const KEY = 'sk-bench';
const HEADERS = { 'x-api-key': KEY, 'anthropic-version': '2023-06-01', 'anthropic-beta': 'managed-agents-2026-04-01', 'content-type': 'application/json' };
const SETTLE_MS = 6_000;
const SAMPLES = 7;
const SAMPLE_EVERY_MS = 1_000;
const COMPILED = '.bench/dist';

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the benchmark reads a few known fields of API replies
type Json = any;

const NET_FLOOR = `const net = require('node:net');
const srv = net.createServer((s) => s.on('data', () => s.write('HTTP/1.1 200 OK\\r\\ncontent-length: 2\\r\\n\\r\\n{}')));
srv.listen(0, '127.0.0.1', () => { const c = net.connect(srv.address().port, '127.0.0.1'); c.on('data', () => {});
  setInterval(() => c.write('POST / HTTP/1.1\\r\\nhost: x\\r\\ncontent-length: 0\\r\\n\\r\\n'), 1000); });`;

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mib = (kib: number): number => Math.round((kib / 1024) * 10) / 10;

async function call(url: string, method: string, path: string, body?: unknown): Promise<Json> {
  const res = await fetch(url + path, { method, headers: HEADERS, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** An acknowledged work item and a bearer credential for it: what a session Pod's sidecar starts with. */
async function acknowledgedItem(url: string, environmentId: string): Promise<{ sessionId: string; workId: string }> {
  const s = await call(url, 'POST', `/emulator/v1/environments/${environmentId}/sessions`, {});
  const w = await call(url, 'GET', `/v1/environments/${environmentId}/work/poll`);
  if (w?.id !== s.work_id) throw new Error('poll did not deliver the new item');
  await call(url, 'POST', `/v1/environments/${environmentId}/work/${w.id}/ack`);
  return { sessionId: s.session_id, workId: w.id };
}

interface Measured {
  readonly child: ChildProcess;
  readonly samples: number[];
}

function spawnMeasured(args: string[], env: Record<string, string>): Measured {
  const child = spawn(process.execPath, args, { env: { PATH: process.env['PATH'] ?? '', ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
  return { child, samples: [] };
}

async function waitStarted(port: number): Promise<void> {
  const until = Date.now() + 30_000;
  while (Date.now() < until) {
    try {
      if ((await fetch(`http://127.0.0.1:${port}/started`)).status === 200) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`sidecar on port ${port} never claimed its lease`);
}

export async function benchSidecar(): Promise<Record<string, number>> {
  console.error(`  compiling the CLI into ${COMPILED} (as the image does)…`);
  const compiling = Date.now();
  // tsc emits even when some other file of the tree has a type error; the sidecar's files are what count.
  const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json', '--outDir', COMPILED, '--sourceMap', 'false'], { stdio: 'inherit' });
  for (const f of ['cli/main.js', 'cli/sidecar.js', 'sidecar/sidecar.js']) {
    if ((statSync(join(COMPILED, f), { throwIfNoEntry: false })?.mtimeMs ?? 0) < compiling - 1_000) throw new Error(`tsc did not emit ${COMPILED}/${f}`);
  }
  if (tsc.status !== 0) console.error('  (tsc reported type errors; the sidecar was emitted and is measured anyway)');
  console.error('  bundling the sidecar into dist/sidecar.cjs (npm run build:sidecar)…');
  if (spawnSync('npm', ['run', '-s', 'build:sidecar'], { stdio: 'inherit' }).status !== 0) throw new Error('npm run build:sidecar failed');
  // The Pod's command, with the image's paths replaced by this checkout's.
  const [, ...podNodeArgs] = SIDECAR_COMMAND.map((a) => a.replace(/^\/app\//, ''));
  const podEntry = podNodeArgs.pop()!;
  const { url, child: emulator } = await startEmulatorProcess(KEY);
  const dir = mkdtempSync(join(tmpdir(), 'agentenv-bench-sidecar-'));
  const processes: Measured[] = [];
  const others: ChildProcess[] = [];
  try {
    const env = await call(url, 'POST', '/v1/environments', { name: 'bench-sidecar', config: { type: 'self_hosted' } });
    const { key } = await call(url, 'POST', `/emulator/v1/environments/${env.id}/keys`);
    writeFileSync(join(dir, 'token'), key);

    const sidecar = async (name: string, argv: string[], port: number): Promise<Measured> => {
      const item = await acknowledgedItem(url, env.id);
      mkdirSync(join(dir, name));
      const m = spawnMeasured(argv, {
        ANTHROPIC_BASE_URL: url,
        AGENTENV_ENVIRONMENT_ID: env.id,
        AGENTENV_SESSION_ID: item.sessionId,
        AGENTENV_WORK_ID: item.workId,
        AGENTENV_CREDENTIAL_FILE: join(dir, 'token'),
        AGENTENV_STATE_DIR: join(dir, name),
        AGENTENV_LEASE_TTL_SECONDS: '10', // beats every 5 s: at least one renewal before sampling ends
        AGENTENV_PROBE_ADDRESS: '127.0.0.1',
        AGENTENV_PROBE_PORT: String(port),
        AGENTENV_PROXY_PORT: String(port + 100),
        AGENTENV_LOG_LEVEL: 'info',
      });
      processes.push(m);
      await waitStarted(port);
      // The session Pod's main container, started once the lease is claimed (not measured).
      others.push(spawn('sleep', ['3600'], { stdio: 'ignore' }));
      return m;
    };
    // Below the kernel's ephemeral range (32768–60999), where outgoing connections take their ports.
    const basePort = 20_000 + Math.floor(Math.random() * 12_000);
    const bare = spawnMeasured(['-e', 'setInterval(()=>{},1e3)'], {});
    processes.push(bare);
    const pod = await sidecar('pod', [...podNodeArgs, podEntry], basePort);
    const compiled = await sidecar('compiled', [`${COMPILED}/cli/main.js`, 'sidecar'], basePort + 1);
    const source = await sidecar('source', ['src/cli/main.ts', 'sidecar'], basePort + 2);
    // What TLS would add (production talks https): a bare process that has loaded node:https.
    const bareHttps = spawnMeasured(['-e', "require('node:https');setInterval(()=>{},1e3)"], {});
    processes.push(bareHttps);
    // The floor for any process that serves a probe and calls an API: a node:net server and client
    // exchanging one small message a second, nothing else.
    const floor = spawnMeasured(['-e', NET_FLOOR], {});
    processes.push(floor);

    await sleep(SETTLE_MS);
    for (let i = 0; i < SAMPLES; i++) {
      for (const p of processes) p.samples.push(rssKiB(p.child.pid!));
      await sleep(SAMPLE_EVERY_MS);
    }
    const lease = await call(url, 'GET', `/v1/environments/${env.id}/work?limit=10`);
    const active = lease.data.filter((w: Json) => w.state === 'active').length;
    if (active !== 3) throw new Error(`expected every sidecar to hold its lease, found ${active} active items`);

    const bareMiB = mib(median(bare.samples));
    const podMiB = mib(median(pod.samples));
    const compiledMiB = mib(median(compiled.samples));
    const sourceMiB = mib(median(source.samples));
    return {
      sidecar_rss_mib: podMiB,
      sidecar_bare_node_rss_mib: bareMiB,
      sidecar_rss_ratio: Math.round((podMiB / bareMiB) * 1000) / 1000,
      sidecar_esm_cli_rss_mib: compiledMiB,
      sidecar_esm_cli_rss_ratio: Math.round((compiledMiB / bareMiB) * 1000) / 1000,
      sidecar_from_source_rss_mib: sourceMiB,
      sidecar_from_source_rss_ratio: Math.round((sourceMiB / bareMiB) * 1000) / 1000,
      sidecar_floor_net_rss_mib: mib(median(floor.samples)),
      sidecar_bare_node_with_https_rss_mib: mib(median(bareHttps.samples)),
    };
  } finally {
    for (const p of processes) p.child.kill('SIGKILL');
    for (const p of others) p.kill('SIGKILL');
    emulator.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}
