/**
 * What the process kubelet keeps of a Pod on disk (docs/process-kubelet.md): its directory
 * `<root-dir>/pods/<namespace>_<name>_<uid>/` with `logs/<container>.log`, `volumes/<volume>/` and
 * `record.json`, whose runs name the file holding each container's command pid (its process group).
 * Integration tests read container logs, look into emptyDirs and find a container's process here.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inject } from 'vitest';

interface PodMeta {
  readonly metadata?: { readonly namespace?: string; readonly name?: string; readonly uid?: string };
}

/** The Pod's directory under the run's kubelet root. */
export function podDir(pod: PodMeta): string {
  const m = pod.metadata ?? {};
  return join(inject('kubeletRootDir'), 'pods', `${m.namespace ?? ''}_${m.name ?? ''}_${m.uid ?? ''}`);
}

/** A container's log (every run, appended); '' when it has none yet. */
export function containerLog(pod: PodMeta, container: string): string {
  try {
    return readFileSync(join(podDir(pod), 'logs', `${container}.log`), 'utf8');
  } catch {
    return '';
  }
}

/** A file in one of the Pod's volumes as the host sees it; undefined when absent. */
export function volumeFile(pod: PodMeta, volume: string, path: string): string | undefined {
  try {
    return readFileSync(join(podDir(pod), 'volumes', volume, path), 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * The pid of a container's current command (the process group the kubelet signals), from the
 * kubelet's run record; undefined while it has no run or the pid is not recorded yet.
 */
export function containerPid(pod: PodMeta, container: string): number | undefined {
  try {
    const record = JSON.parse(readFileSync(join(podDir(pod), 'record.json'), 'utf8')) as { runs?: Record<string, { pidFile?: string }> };
    const pidFile = record.runs?.[container]?.pidFile;
    if (!pidFile) return undefined;
    const pid = Number.parseInt(readFileSync(pidFile, 'utf8').trim(), 10);
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The JSON lines of a log (pino's shape), skipping lines that are not JSON. */
export function jsonLines(log: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of log.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a torn line
    }
  }
  return out;
}
