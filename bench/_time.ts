/**
 * Small timing helpers shared by the bench scripts.
 *
 * @module
 */

/**
 * Resolves after `ms` milliseconds.
 *
 * @param ms the delay
 * @returns a promise that resolves to nothing
 */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Settles like `promise`, or rejects after `ms` milliseconds.
 *
 * @param promise what to wait for
 * @param ms the limit
 * @param what the action, for the error message ("read from the server")
 * @returns the value of `promise`
 */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Cannot ${what}: timed out after ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, limit]);
  } finally {
    clearTimeout(timer);
  }
}
