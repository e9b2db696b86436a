/**
 * deploy/observability: the PrometheusRule and the Grafana dashboard use only metrics and labels that
 * src/telemetry/metrics.ts exports, the PrometheusRule validates against the prometheus-operator CRD
 * schema, and every alert carries what an on-call reader needs.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { ensureTool } from '../../scripts/tools.ts';
import { SESSION_PHASES } from '../../src/crd/agent-session.ts';
import { OperatorMetrics } from '../../src/telemetry/metrics.ts';
import { kubeconform, REPO } from './helm.ts';

const DIR = join(REPO, 'deploy', 'observability');

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface PrometheusRule {
  apiVersion: string;
  kind: string;
  metadata: { name: string };
  spec: { groups: { name: string; rules: Rule[] }[] };
}
interface Panel {
  type: string;
  id: number;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: { expr: string; refId: string }[];
}

/** Every series name the operator exports, with its label names (histograms as _bucket/_sum/_count). */
async function exportedSeries(): Promise<Map<string, Set<string>>> {
  const registry = new OperatorMetrics().registry;
  const types = new Map((await registry.getMetricsAsJSON()).map((m) => [m.name, String(m.type)]));
  const series = new Map<string, Set<string>>();
  for (const metric of registry.getMetricsAsArray() as unknown as { name: string; labelNames?: string[] }[]) {
    const labels = new Set(metric.labelNames ?? []);
    const type = types.get(metric.name);
    const names = type === 'histogram' ? ['_bucket', '_sum', '_count'].map((s) => metric.name + s) : type === 'summary' ? [metric.name, `${metric.name}_sum`, `${metric.name}_count`] : [metric.name];
    for (const n of names) series.set(n, new Set([...labels, ...(n.endsWith('_bucket') ? ['le'] : [])]));
  }
  return series;
}

/** Labels the scrape adds (target labels of the ServiceMonitor) on top of the operator's own. */
const TARGET_LABELS = new Set(['namespace', 'pod', 'job', 'instance', 'service', 'container', 'endpoint']);

/** Metric names and the label names their selectors use, from a PromQL expression. */
function selectors(expr: string): { metric: string; labels: string[] }[] {
  const out: { metric: string; labels: string[] }[] = [];
  for (const m of expr.matchAll(/\b(agentenv_[a-z0-9_]+)(\{([^}]*)\})?/g)) {
    const labels = [...(m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g)].map((l) => l[1]!);
    out.push({ metric: m[1]!, labels });
  }
  return out;
}

function expectKnown(expr: string, series: Map<string, Set<string>>, where: string): void {
  const used = selectors(expr);
  expect(used.length, `${where} uses no agentenv metric`).toBeGreaterThan(0);
  const labelsOfExpr = new Set<string>(TARGET_LABELS);
  for (const { metric, labels } of used) {
    const known = series.get(metric);
    expect(known, `${where}: ${metric} is not exported by src/telemetry/metrics.ts`).toBeDefined();
    for (const l of labels) expect(known!.has(l) || TARGET_LABELS.has(l), `${where}: ${metric} has no label ${l}`).toBe(true);
    for (const l of known!) labelsOfExpr.add(l);
  }
  for (const by of expr.matchAll(/\bby\s*\(([^)]*)\)/g)) {
    for (const l of by[1]!.split(',').map((s) => s.trim()).filter(Boolean)) {
      expect(labelsOfExpr.has(l), `${where}: aggregates by ${l}, which none of its metrics has`).toBe(true);
    }
  }
  for (const phase of expr.matchAll(/phase(?:=~|=)"([^"]*)"/g)) {
    for (const p of phase[1]!.split('|')) expect(SESSION_PHASES, `${where}: unknown AgentSession phase ${p}`).toContain(p);
  }
}

const alertsFile = (): Promise<string> => readFile(join(DIR, 'alerts.yaml'), 'utf8');

/** Run test/tools/promql-check (Prometheus' own rule and PromQL parsers). */
async function promqlCheck(args: string[], stdin = ''): Promise<{ ok: boolean; output: string }> {
  const bin = await ensureTool('promql-check');
  return new Promise((resolve) => {
    const child = execFile(bin, args, (err, stdout, stderr) => resolve({ ok: !err, output: `${stdout}${stderr}` }));
    child.stdin?.end(stdin);
  });
}

/** A dashboard query as Prometheus receives it: Grafana's variables substituted. */
const asSent = (expr: string): string => expr.replaceAll('$__rate_interval', '2m').replaceAll('$namespace', '.*');

describe('alerts.yaml', () => {
  it('is a PrometheusRule that validates against the prometheus-operator CRD schema', async () => {
    const report = await kubeconform(await alertsFile());
    expect(report.output).toMatch(/Valid: 1, Invalid: 0, Errors: 0, Skipped: 0/);
    expect(report.ok).toBe(true);
  }, 600_000);

  it('covers stranded work, heartbeat failures, API errors, queue depth growth and reconcile errors', async () => {
    const rule = parse(await alertsFile()) as PrometheusRule;
    const alerts = rule.spec.groups.flatMap((g) => g.rules).map((r) => r.alert);
    expect(alerts).toEqual(expect.arrayContaining(['AgentenvStrandedWork', 'AgentenvHeartbeatFailures', 'AgentenvApiErrors', 'AgentenvWorkQueueGrowing', 'AgentenvReconcileErrors']));
    expect(new Set(alerts).size).toBe(alerts.length);
  });

  it('gives every alert a severity, a summary and a description, and uses only exported metrics and labels', async () => {
    const series = await exportedSeries();
    const rule = parse(await alertsFile()) as PrometheusRule;
    for (const r of rule.spec.groups.flatMap((g) => g.rules)) {
      expect(r.alert, 'only alerting rules').toMatch(/^Agentenv[A-Z][A-Za-z]+$/);
      expect(['warning', 'critical']).toContain(r.labels?.['severity']);
      expect(r.annotations?.['summary'], r.alert).toBeTruthy();
      expect(r.annotations?.['description'], r.alert).toBeTruthy();
      if (r.for !== undefined) expect(r.for).toMatch(/^[0-9]+[smh]$/);
      expectKnown(r.expr, series, `alert ${r.alert}`);
    }
  });
});

describe('PromQL, checked by Prometheus\' own parsers', () => {
  it('the alert rules pass as a rule file (YAML, PromQL, templates), as promtool check rules would', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'agentenv-rules-'));
    try {
      const file = join(dir, 'rules.yaml');
      await writeFile(file, stringify((parse(await alertsFile()) as PrometheusRule).spec));
      const r = await promqlCheck(['rules', file]);
      expect(r.output).toMatch(/3 groups, \d+ rules: ok/);
      expect(r.ok).toBe(true);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 900_000);

  it('every dashboard query parses', async () => {
    const dashboard = JSON.parse(await readFile(join(DIR, 'grafana-dashboard.json'), 'utf8')) as { panels: Panel[] };
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => asSent(t.expr).replaceAll('\n', ' ')));
    const r = await promqlCheck(['exprs'], exprs.join('\n'));
    expect(r.output).toBe(`${exprs.length} expressions: ok\n`);
  }, 900_000);

  it('the checker refuses broken PromQL and a broken alert template', async () => {
    expect((await promqlCheck(['exprs'], 'sum by (le (rate(x[5m]))')).ok).toBe(false);
    const dir = await mkdtemp(join(tmpdir(), 'agentenv-rules-'));
    try {
      const file = join(dir, 'rules.yaml');
      await writeFile(file, stringify({ groups: [{ name: 'g', rules: [{ alert: 'A', expr: 'up == 0', annotations: { summary: '{{ $labels.job ' } }] }] }));
      expect((await promqlCheck(['rules', file])).ok).toBe(false);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 900_000);
});

describe('grafana-dashboard.json', () => {
  it('queries only exported metrics and labels, through the templated data source and namespace', async () => {
    const series = await exportedSeries();
    const dashboard = JSON.parse(await readFile(join(DIR, 'grafana-dashboard.json'), 'utf8')) as { uid: string; panels: Panel[]; templating: { list: { name: string }[] } };
    expect(dashboard.uid).toBe('agentenv-operator');
    expect(dashboard.templating.list.map((v) => v.name)).toEqual(['datasource', 'namespace']);
    const queries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));
    expect(queries.length).toBeGreaterThan(20);
    for (const q of queries) {
      expectKnown(q.expr, series, `panel "${q.panel}"`);
      for (const s of selectors(q.expr)) expect(q.expr, `panel "${q.panel}" filters ${s.metric} by namespace`).toContain(`${s.metric}{namespace=~"$namespace"`);
    }
  });

  it('shows every metric the operator defines (default process metrics aside)', async () => {
    const text = await readFile(join(DIR, 'grafana-dashboard.json'), 'utf8');
    const own = [...(await exportedSeries()).keys()].filter((n) => !/^agentenv_(process|nodejs)_/.test(n) && !/_(sum|count)$/.test(n));
    for (const name of own) expect(text, `${name} has no panel`).toContain(name.replace(/_bucket$/, ''));
  });

  it('lays panels out without overlaps and with unique ids', async () => {
    const dashboard = JSON.parse(await readFile(join(DIR, 'grafana-dashboard.json'), 'utf8')) as { panels: Panel[] };
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const p of dashboard.panels) {
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
      for (let x = p.gridPos.x; x < p.gridPos.x + p.gridPos.w; x++) {
        for (let y = p.gridPos.y; y < p.gridPos.y + p.gridPos.h; y++) {
          expect(cells.has(`${x},${y}`), `${p.title} overlaps at ${x},${y}`).toBe(false);
          cells.add(`${x},${y}`);
        }
      }
    }
  });
});
