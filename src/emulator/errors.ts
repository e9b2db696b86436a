import { ERROR_TYPE_BY_STATUS } from '../api/wire.ts';

/** An error the emulator answers with, in the Anthropic error shape. */
export class EmulatorError extends Error {
  readonly status: number;
  readonly type: string;
  readonly details: Record<string, unknown> | undefined;
  readonly headers: Record<string, string>;

  constructor(status: number, message: string, options: { type?: string; details?: Record<string, unknown>; headers?: Record<string, string> } = {}) {
    super(message);
    this.status = status;
    this.type = options.type ?? ERROR_TYPE_BY_STATUS[status] ?? (status >= 500 ? 'api_error' : 'invalid_request_error');
    this.details = options.details;
    this.headers = options.headers ?? {};
  }

  body(): { type: 'error'; error: { type: string; message: string; details?: Record<string, unknown> } } {
    return { type: 'error', error: { type: this.type, message: this.message, ...(this.details ? { details: this.details } : {}) } };
  }
}
