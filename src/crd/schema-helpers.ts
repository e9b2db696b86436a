/**
 * Small builders for the zod schemas that define the custom resources. The schemas are the one
 * source of truth: `generate.ts` turns them into the CRDs' OpenAPI schemas (descriptions, defaults,
 * CEL rules ride along as zod metadata), and the operator parses what it reads with them.
 */
import { z } from 'zod';

export interface CelRule {
  readonly rule: string;
  readonly message: string;
  /**
   * CEL string expression for the message, so it can name the offending value; `message` is the
   * fallback the apiserver uses if the expression fails.
   */
  readonly messageExpression?: string;
  /** JSONPath-ish field the error is reported on, e.g. `.allowedHosts`. */
  readonly fieldPath?: string;
  readonly reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
}

/** Attach CEL validation rules (`x-kubernetes-validations`) to a schema. */
export function cel<T extends z.ZodType>(schema: T, ...rules: CelRule[]): T {
  const existing = (schema.meta()?.['x-kubernetes-validations'] as CelRule[] | undefined) ?? [];
  return schema.meta({ ...schema.meta(), 'x-kubernetes-validations': [...existing, ...rules] }) as T;
}

/** A `{name, key}` reference to one key of a Secret in the resource's namespace. */
export const SecretKeyRef = (what: string) =>
  z
    .object({
      name: z
        .string()
        .min(1)
        .max(253)
        .describe(`Name of the Secret (in the same namespace) that holds ${what}.`),
      key: z
        .string()
        .min(1)
        .max(253)
        .describe(`Key within the Secret whose value is ${what}.`),
    })
    .describe(`Reference to the Secret key holding ${what}.`);

/** A Kubernetes-style condition (metav1.Condition). */
export const Condition = z
  .object({
    type: z.string().min(1).max(316).describe('Type of condition, e.g. Ready or Synced.'),
    status: z.enum(['True', 'False', 'Unknown']).describe('Status of the condition: True, False or Unknown.'),
    reason: z.string().min(1).max(1024).describe('Machine-readable, CamelCase reason for the last transition.'),
    message: z.string().max(32768).describe('Human-readable details about the last transition.'),
    lastTransitionTime: z.string().describe('Last time the condition changed status (RFC 3339).'),
    observedGeneration: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe('The .metadata.generation the condition was computed from.'),
  })
  .describe('A condition of the resource, in the standard Kubernetes shape.');
export type Condition = z.infer<typeof Condition>;

export const Conditions = z
  .array(Condition)
  .max(16)
  .meta({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] })
  .describe('Current conditions of the resource.');

/** An opaque embedded object the apiserver keeps as-is (validated where it is used). */
export const opaqueObject = (description: string) =>
  z.record(z.string(), z.unknown()).meta({ 'x-kubernetes-preserve-unknown-fields': true }).describe(description);

/** RFC 3339 timestamp. */
export const timestamp = (description: string) => z.string().meta({ format: 'date-time' }).describe(description);
