export * from './client.ts';
export * from './errors.ts';
export * from './endpoints.ts';
export * from './retry.ts';
export * from './transport.ts';
export * from './work-secret.ts';
export * from './wire.ts';
