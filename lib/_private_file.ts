/**
 * Creating a per-user secret file: parent directories mode 0700, the file
 * 0600, never replacing a file that exists.
 *
 * @module
 */

/** Makes the directories above `path`, mode 0700 where new. */
export async function makePrivateParents(path: string): Promise<void> {
  const slash = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  if (slash > 0) await Deno.mkdir(path.slice(0, slash), { recursive: true, mode: 0o700 });
}

/**
 * Writes `text` to `path` (mode 0600) all at once: a temporary file is
 * written, then linked under the final name, so a reader never sees half a
 * file and an existing file is never replaced.
 *
 * @returns `true` when this call created the file, `false` when it existed
 */
export async function createPrivateFile(path: string, text: string): Promise<boolean> {
  await makePrivateParents(path);
  const temp = `${path}.${crypto.randomUUID()}.tmp`;
  try {
    await Deno.writeTextFile(temp, text, { createNew: true, mode: 0o600 });
    await Deno.link(temp, path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) return false;
    throw error;
  } finally {
    await Deno.remove(temp).catch(() => {});
  }
}
