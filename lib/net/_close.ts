/**
 * Closes a connection or listener that may already be closed. Closing twice
 * is expected on the shutdown paths (a timer and a failing read may race);
 * any other failure is a bug and is rethrown.
 *
 * @param resource a `Deno.Conn`, `Deno.Listener` or similar
 */
export function closeQuietly(resource: { close(): void }): void {
  try {
    resource.close();
  } catch (error) {
    if (!(error instanceof Deno.errors.BadResource)) throw error;
  }
}
