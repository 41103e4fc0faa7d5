/**
 * Loading the shared token from a file or the `SOCKIT_TOKEN` environment
 * variable. A token is never taken from the command line, where every local
 * user can read it.
 *
 * @module
 */

import { MIN_TOKEN_LENGTH } from "../protocol/auth.ts";
import { createPrivateFile, openToOthers } from "./_private_file.ts";
import { defaultConfigPath } from "./config_path.ts";

/** Options for {@linkcode loadToken}. */
export interface LoadTokenOptions {
  /** A file holding the token (one line; a trailing newline is ignored). @default {undefined} */
  tokenFile?: string | undefined;
  /** Read `SOCKIT_TOKEN` when no file is given and `--allow-env` grants it. @default {true} */
  useEnv?: boolean;
  /**
   * A file to read when neither `tokenFile` nor the environment gives a
   * token and the file exists, such as {@linkcode defaultTokenPath}.
   * @default {undefined}
   */
  defaultFile?: string | undefined;
}

/** The environment variable a token may come from. */
export const TOKEN_ENV = "SOCKIT_TOKEN";

/**
 * Thrown when a token file or variable cannot be used.
 *
 * @example The message names the source
 * ```ts
 * import { TokenError } from "@sockit/sockit";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(new TokenError("t.txt", "too short").message, 'Cannot use token from "t.txt": too short');
 * ```
 */
export class TokenError extends Error {
  /** The file path or variable name. */
  readonly source: string;

  /**
   * Creates a `TokenError`.
   *
   * @param source the file path or variable name
   * @param reason what is wrong
   * @param options the original error as `cause`
   */
  constructor(source: string, reason: string, options?: ErrorOptions) {
    super(`Cannot use token from "${source}": ${reason}`, options);
    this.name = "TokenError";
    this.source = source;
  }
}

function check(source: string, token: string): string {
  if (token.length < MIN_TOKEN_LENGTH) {
    throw new TokenError(source, `a token needs at least ${MIN_TOKEN_LENGTH} characters`);
  }
  if (/[\r\n\0]/.test(token)) {
    throw new TokenError(source, "a token is one line without NUL characters");
  }
  return token;
}

/**
 * Loads the token from `tokenFile`, else from `SOCKIT_TOKEN`.
 *
 * A token file readable or writable by group or others is refused, as ssh
 * refuses such private keys.
 *
 * @param options where to look
 * @returns the token, or `undefined` when neither source gives one
 * @throws {TokenError} when the file is unreadable, too open, or the token is too short
 *
 * @example Read a token from a private file
 * ```ts
 * import { loadToken } from "@sockit/sockit";
 * import { deepEqual } from "node:assert/strict";
 *
 * const file = await Deno.makeTempFile();
 * await Deno.writeTextFile(file, "0123456789abcdef0123\n", { mode: 0o600 });
 * await Deno.chmod(file, 0o600);
 * deepEqual(await loadToken({ tokenFile: file, useEnv: false }), "0123456789abcdef0123");
 * await Deno.remove(file);
 * ```
 */
export async function loadToken(options: LoadTokenOptions = {}): Promise<string | undefined> {
  const { tokenFile, defaultFile } = options;
  if (tokenFile !== undefined) return await readTokenFile(tokenFile);
  if (options.useEnv !== false) {
    const granted = Deno.permissions.querySync({ name: "env", variable: TOKEN_ENV }).state ===
      "granted";
    const value = granted ? Deno.env.get(TOKEN_ENV) : undefined;
    if (value !== undefined && value !== "") return check(TOKEN_ENV, value);
  }
  if (defaultFile === undefined) return undefined;
  const readable = (await Deno.permissions.query({ name: "read", path: defaultFile })).state ===
    "granted";
  if (!readable) return undefined;
  try {
    return await readTokenFile(defaultFile);
  } catch (error) {
    if (error instanceof TokenError && error.cause instanceof Deno.errors.NotFound) {
      return undefined;
    }
    throw error;
  }
}

async function readTokenFile(path: string): Promise<string> {
  let text: string;
  try {
    const info = await Deno.stat(path);
    const unsafe = openToOthers(info);
    if (unsafe) throw new TokenError(path, unsafe);
    text = await Deno.readTextFile(path);
  } catch (error) {
    if (error instanceof TokenError) throw error;
    if (error instanceof Deno.errors.NotFound) {
      throw new TokenError(path, "no such file", { cause: error });
    }
    throw error;
  }
  return check(path, text.replace(/\r?\n$/, ""));
}

/**
 * The token file servers generate and clients read when given no token:
 * `$XDG_CONFIG_HOME/sockit/token`, else `$HOME/.config/sockit/token`
 * (`%APPDATA%\\sockit\\token` on Windows).
 *
 * @returns the path, or `undefined` when `--allow-env` does not grant the
 *   variables it is built from or they are unset
 *
 * @example Find the default token file
 * ```ts
 * import { defaultTokenPath } from "./token.ts";
 *
 * const path = defaultTokenPath();
 * console.log(path ?? "no default token file on this system");
 * ```
 */
export function defaultTokenPath(): string | undefined {
  return defaultConfigPath("token");
}

/**
 * Makes a new random token: 32 bytes from the system's secure random
 * source, as 43 characters of base64url.
 *
 * @returns the token
 *
 * @example Two tokens differ
 * ```ts
 * import { createToken } from "@sockit/sockit";
 * import { notDeepEqual } from "node:assert/strict";
 *
 * notDeepEqual(createToken(), createToken());
 * ```
 */
export function createToken(): string {
  return crypto.getRandomValues(new Uint8Array(32)).toBase64({
    alphabet: "base64url",
    omitPadding: true,
  });
}

/**
 * Reads the token in `path`, or creates the file with a new token when it
 * does not exist. The directory is made mode 0700 and the file 0600, and an
 * existing file other users can access is refused.
 *
 * @param path where the token lives, such as {@linkcode defaultTokenPath}
 * @returns the token, and whether this call created it
 * @throws {TokenError} when an existing file is unsafe or holds no valid token
 *
 * @example Create once, then read back
 * ```ts
 * import { ensureToken } from "./token.ts";
 * import { deepEqual } from "node:assert/strict";
 *
 * const dir = await Deno.makeTempDir();
 * const first = await ensureToken(`${dir}/token`);
 * const again = await ensureToken(`${dir}/token`);
 * deepEqual([first.created, again.created], [true, false]);
 * deepEqual(again.token, first.token);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function ensureToken(path: string): Promise<{ token: string; created: boolean }> {
  try {
    return { token: await readTokenFile(path), created: false };
  } catch (error) {
    if (!(error instanceof TokenError && error.cause instanceof Deno.errors.NotFound)) throw error;
  }
  const token = createToken();
  // Never replace a file another process wrote meanwhile.
  if (!await createPrivateFile(path, token + "\n")) {
    return { token: await readTokenFile(path), created: false };
  }
  return { token, created: true };
}
