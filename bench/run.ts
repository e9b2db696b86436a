/**
 * `npm run bench [-- <name>...]`: run the benchmarks and print their figures as a table (and as
 * JSON in .bench/results.json). Figures are measured, never asserted: see docs/performance.md.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { benchDispatch } from './dispatch.ts';
import { benchEmulator } from './emulator.ts';
import { benchProxy } from './proxy.ts';
import { benchResume } from './resume.ts';
import { benchServed } from './served.ts';
import { benchSidecar } from './sidecar.ts';
import { benchWarm } from './warm.ts';

const BENCHES: Record<string, () => Promise<Record<string, number>>> = {
  emulator: benchEmulator,
  sidecar: benchSidecar,
  proxy: benchProxy,
  dispatch: benchDispatch,
  served: benchServed,
  resume: benchResume,
  warm: benchWarm,
};

const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const names = wanted.length ? wanted : Object.keys(BENCHES);
const results: Record<string, number> = {};
for (const name of names) {
  const bench = BENCHES[name];
  if (!bench) throw new Error(`unknown benchmark ${name}; known: ${Object.keys(BENCHES).join(', ')}`);
  console.error(`running ${name}…`);
  Object.assign(results, await bench());
}
const width = Math.max(...Object.keys(results).map((k) => k.length));
for (const [k, v] of Object.entries(results)) console.log(`${k.padEnd(width)}  ${v}`);
await mkdir('.bench', { recursive: true });
await writeFile('.bench/results.json', JSON.stringify({ at: new Date().toISOString(), results }, null, 2));
