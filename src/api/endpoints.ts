/**
 * The Environments API's endpoints, and for each whether the client may retry it automatically.
 *
 * A retry is safe when sending the request twice has the same effect as sending it once *and*
 * the second reply means the same thing to the caller:
 *
 * | endpoint               | auto-retry | why                                                                  |
 * |------------------------|------------|----------------------------------------------------------------------|
 * | environments.create    | no         | a lost reply + retry creates a second environment; the controller's create fencing (uid tag, look before create) owns recovery |
 * | environments.list/get  | yes        | reads                                                                |
 * | environments.update    | yes        | the same body sets the same values                                    |
 * | environments.archive   | yes        | archiving twice leaves it archived                                    |
 * | environments.delete    | yes        | a retry after a lost success answers 404, which callers of delete treat as "gone" |
 * | work.poll              | no         | the poll loop owns its pacing and backoff; a blind retry would stack long polls |
 * | work.ack               | yes        | a retry after a lost success answers 409; the dispatcher settles that against the item's state |
 * | work.heartbeat         | no         | a retry after a lost success would echo a stale `last_heartbeat` and get 412 — a false lease loss; the lease loop bounds and re-times beats itself |
 * | work.stop (graceful)   | no         | the second graceful stop of a `stopping` item *confirms* it (→ stopped) |
 * | work.stop (force)      | yes        | a retry after a lost success answers 409 = already stopped            |
 * | work.list/get/stats    | yes        | reads                                                                |
 * | work.update            | yes        | a metadata merge is idempotent                                        |
 * | sessions.get           | yes        | a read (the operator's retention and idle checks)                     |
 */
export const ENDPOINTS = {
  'environments.create': { method: 'POST', retrySafe: false },
  'environments.list': { method: 'GET', retrySafe: true },
  'environments.get': { method: 'GET', retrySafe: true },
  'environments.update': { method: 'POST', retrySafe: true },
  'environments.delete': { method: 'DELETE', retrySafe: true },
  'environments.archive': { method: 'POST', retrySafe: true },
  'work.poll': { method: 'GET', retrySafe: false },
  'work.ack': { method: 'POST', retrySafe: true },
  'work.heartbeat': { method: 'POST', retrySafe: false },
  'work.stop': { method: 'POST', retrySafe: false },
  'work.stop_force': { method: 'POST', retrySafe: true },
  'work.list': { method: 'GET', retrySafe: true },
  'work.get': { method: 'GET', retrySafe: true },
  'work.update': { method: 'POST', retrySafe: true },
  'work.stats': { method: 'GET', retrySafe: true },
  'sessions.get': { method: 'GET', retrySafe: true },
} as const satisfies Record<string, { method: 'GET' | 'POST' | 'DELETE'; retrySafe: boolean }>;

export type EndpointName = keyof typeof ENDPOINTS;
