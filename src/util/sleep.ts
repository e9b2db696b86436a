/**
 * Resolve after `ms` milliseconds, or reject with the signal's reason as soon as `signal` aborts.
 * The timer is cleared on abort, so an aborted sleep holds nothing open.
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, Math.max(0, ms));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Like {@link sleep}, but resolves `false` instead of rejecting when `signal` aborts first. */
export async function sleepUnlessAborted(ms: number, signal?: AbortSignal): Promise<boolean> {
  try {
    await sleep(ms, signal);
    return true;
  } catch (e) {
    if (signal?.aborted) return false;
    throw e;
  }
}
