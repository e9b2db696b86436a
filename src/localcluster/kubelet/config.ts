/** The process kubelet's configuration, parsed once from its command line. */
import { z } from 'zod';
import { LOG_FORMATS, LOG_LEVELS } from '../../config/logging.ts';
import { DEFAULT_PROJECT_IMAGE } from './images.ts';

const labels = z
  .string()
  .transform((s, ctx) => {
    const out: Record<string, string> = {};
    for (const pair of s.split(',').map((p) => p.trim()).filter(Boolean)) {
      const eq = pair.indexOf('=');
      if (eq <= 0) {
        ctx.addIssue({ code: 'custom', message: `expected key=value, got ${JSON.stringify(pair)}` });
        return z.NEVER;
      }
      out[pair.slice(0, eq)] = pair.slice(eq + 1);
    }
    return out;
  });

export const KubeletConfig = z.object({
  kubeconfig: z.string().min(1),
  nodeName: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'a DNS-1123 subdomain'),
  rootDir: z.string().min(1),
  /** Image name (any tag) that runs this repository's CLI. Default ghcr.io/agentenv-io/agentenv. */
  projectImage: z.string().min(1).default(DEFAULT_PROJECT_IMAGE),
  /** reaper binary (test/controlplane/cmd/reaper); without it containers start under setsid. */
  reaper: z.string().min(1).optional(),
  /** Containers die when this process dies (needs reaper). Default: the kubelet's parent. */
  anchorPid: z.coerce.number().int().positive().optional(),
  /** Bind unscheduled Pods to this node (be its scheduler). Default true; off for a second kubelet beside one that schedules. */
  scheduling: z.boolean().default(true),
  /** Extra Node labels, `k=v,k2=v2`. */
  nodeLabels: labels.default({}),
  logLevel: z.enum(LOG_LEVELS).default('info'),
  logFormat: z.enum(LOG_FORMATS).default('json'),
});
export type KubeletConfig = z.infer<typeof KubeletConfig>;
