/**
 * Global setup of the `chart` project: provision every tool once, one after the other, before the
 * test files run in parallel (each would otherwise start the same cold Go build).
 */
import { ensureTool, TOOLS, type ToolName } from '../../scripts/tools.ts';

export default async function setup(): Promise<void> {
  for (const name of Object.keys(TOOLS) as ToolName[]) {
    const started = performance.now();
    const path = await ensureTool(name);
    const seconds = (performance.now() - started) / 1000;
    if (seconds > 1) process.stderr.write(`[chart tools] ${name}: ${path} (${seconds.toFixed(1)}s)\n`);
  }
}
