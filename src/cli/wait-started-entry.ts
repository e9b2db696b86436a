/**
 * The sidecar container's startup probe as session Pods run it: `node --no-sparkplug --no-maglev
 * --no-turbofan /app/dist/wait-started.cjs <seconds>` (see `WAIT_STARTED_COMMAND` in
 * src/sessions/objects/pod.ts; the logic is src/sidecar/wait-started.ts).
 *
 * A bundle of its own (dist/wait-started.cjs, esbuild), not a mode of dist/sidecar.cjs: it runs as a
 * second Node process in the sidecar container, under the sidecar's memory limit, until the claim.
 * Measured on the development machine, this bundle's process takes 43–46 MiB resident (7.7 MiB of it
 * anonymous: the Node binary's pages are shared with the sidecar's), against 52–53 MiB for the
 * sidecar's bundle in a `wait-started` mode, which evaluates every sidecar module to wait on one
 * socket.
 */
import { runWaitStarted } from '../sidecar/wait-started.ts';

runWaitStarted(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`wait-started: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
