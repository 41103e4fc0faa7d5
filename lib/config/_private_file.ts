/**
 * Creating a per-user secret file: parent directories mode 0700, the file
 * 0600, never replacing a file that exists.
 *
 * @module
 */

/**
 * Why a secret file is unsafe to use, as ssh judges a private key: other
 * users can read or write it. `undefined` when it is private (and always
 * on Windows, which has no such mode bits).
 */
export function openToOthers(info: Deno.FileInfo): string | undefined {
  if (Deno.build.os === "windows" || info.mode === null || (info.mode & 0o077) === 0) {
    return undefined;
  }
  return `other users can access it (mode ${(info.mode & 0o777).toString(8)}); run chmod 600`;
}

/** Makes the directories above `path`, mode 0700 where new. */
export async function makePrivateParents(path: string): Promise<void> {
  const slash = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  if (slash > 0) await Deno.mkdir(path.slice(0, slash), { recursive: true, mode: 0o700 });
}

/**
 * Writes `text` to a new file `path` (mode 0600), never replacing one that
 * exists. Needs write permission on `path` only, so a server granted just
 * its token file and directory can create it.
 *
 * @returns `true` when this call created the file, `false` when it existed
 */
export async function createPrivateFile(path: string, text: string): Promise<boolean> {
  await makePrivateParents(path);
  try {
    // createNew: never replace a file another process wrote meanwhile.
    using file = await Deno.open(path, { write: true, createNew: true, mode: 0o600 });
    const bytes = new TextEncoder().encode(text);
    for (let at = 0; at < bytes.length;) at += await file.write(bytes.subarray(at));
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.AlreadyExists) return false;
    throw error;
  }
}
