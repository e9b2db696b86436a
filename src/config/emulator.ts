/** Configuration of `agentenv emulator`, parsed once at the entrypoint. */
import { z } from 'zod';
import { LOG_FORMATS, LOG_LEVELS } from './logging.ts';

export const EmulatorConfig = z
  .object({
    port: z.coerce.number().int().min(0).max(65535).default(18080),
    host: z.string().min(1).default('127.0.0.1'),
    apiKeys: z.array(z.string().min(1)).min(1, 'at least one API key is required: --api-key <key> or EMULATOR_API_KEYS'),
    workSecrets: z.boolean().default(false),
    leaseTtlDefault: z.coerce.number().int().positive().default(90),
    leaseTtlMin: z.coerce.number().int().positive().default(10),
    leaseTtlMax: z.coerce.number().int().positive().default(600),
    logLevel: z.enum(LOG_LEVELS).default('info'),
    logFormat: z.enum(LOG_FORMATS).default('json'),
  })
  .refine((c) => c.leaseTtlMin <= c.leaseTtlDefault && c.leaseTtlDefault <= c.leaseTtlMax, {
    message: 'lease TTLs must satisfy min <= default <= max',
    path: ['leaseTtlDefault'],
  });
export type EmulatorConfig = z.infer<typeof EmulatorConfig>;
