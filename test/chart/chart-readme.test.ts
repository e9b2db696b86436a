/**
 * The chart README's values table is generated (scripts/generate-chart-readme.ts) from the schema and
 * values.yaml: it is current, and every value has a description, so there is one copy of each.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { render, valueRows } from '../../scripts/generate-chart-readme.ts';
import { CHART } from './helm.ts';

describe('the chart README', () => {
  it('holds the values table as generated from values.schema.json and values.yaml (run `npm run generate`)', () => {
    const current = readFileSync(join(CHART, 'README.md'), 'utf8');
    expect(render(current)).toBe(current);
  });

  it('describes every value (in the schema, or in the comment above it in values.yaml)', () => {
    const rows = valueRows();
    expect(rows.filter((r) => !r.description).map((r) => r.key)).toEqual([]);
    expect(rows.map((r) => r.key)).toEqual(expect.arrayContaining(['tenancy.adoptionNamespaces', 'sessions.imagePullSecrets', 'leaderElection.id', 'proxy.httpsProxy']));
  });
});
