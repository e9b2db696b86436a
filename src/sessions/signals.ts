/**
 * The autoscaling signals of the self-hosted environments (pure): from the AgentEnvironment cache
 * and the count of unfinished sessions to the per-environment figures the metrics report at
 * scrape time (telemetry/metrics.ts). Nothing is stored here, so an environment that is deleted
 * (or stops being self-hosted) drops out of the next scrape.
 *
 * The queue figures are the status the environment reconciler writes from `GET …/work/stats` on
 * each pass of a self-hosted environment (every `queueRefreshMs`, 60 s by default): they are that
 * old at most. The oldest item's age is computed at scrape time from its `oldestQueuedAt`.
 */
import { CONDITIONS } from '../crd/meta.ts';
import type { AgentEnvironment } from '../crd/resources.ts';
import type { EnvironmentFigures } from '../telemetry/metrics.ts';

export function environmentFigures(envs: readonly AgentEnvironment[], activeSessions: (namespace: string, name: string) => number): EnvironmentFigures[] {
  const out: EnvironmentFigures[] = [];
  for (const env of envs) {
    if (!env.spec?.selfHosted) continue;
    const namespace = env.metadata?.namespace ?? '';
    const name = env.metadata?.name ?? '';
    const q = env.status?.queue;
    const oldest = q?.oldestQueuedAt ? Date.parse(q.oldestQueuedAt) : NaN;
    const condition = env.status?.conditions?.find((c) => c.type === CONDITIONS.dispatching)?.status;
    out.push({
      namespace,
      name,
      ...(q ? { queue: { depth: q.depth, pending: q.pending, workersPolling: q.workersPolling, ...(Number.isNaN(oldest) ? {} : { oldestQueuedAt: oldest }) } } : {}),
      activeSessions: activeSessions(namespace, name),
      ...(condition === 'True' ? { dispatching: true } : condition === 'False' ? { dispatching: false } : {}),
    });
  }
  return out;
}
