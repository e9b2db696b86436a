/**
 * The sidecar as session Pods run it: `node --no-sparkplug --no-maglev --no-turbofan
 * /app/dist/sidecar.cjs` (see `SIDECAR_COMMAND` in src/sessions/objects/pod.ts), the same `run()` as
 * `agentenv sidecar`.
 *
 * `npm run build` bundles this file and the sidecar's modules into ONE CommonJS file
 * (dist/sidecar.cjs, esbuild). The sidecar runs in every sandbox Pod, and measured against a bare
 * `node -e` process in the same run (bench/sidecar.ts) the two differences are worth about 1.5 MiB
 * of resident memory: Node's ES module loader is never initialised for a CommonJS entry, and one
 * file is one compiled script instead of a dozen module records. The V8 flags (interpreter only:
 * nothing in the sidecar is hot) are given on the command line, which spares loading `node:v8`.
 */
import { run } from './sidecar.ts';

run(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`agentenv sidecar: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
