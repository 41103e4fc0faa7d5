/**
 * Loading the shared token from a file or the `SOCKIT_TOKEN` environment
 * variable. A token is never taken from the command line, where every local
 * user can read it.
 *
 * @module
 */

import { MIN_TOKEN_LENGTH } from "./auth.ts";

/** Options for {@linkcode loadToken}. */
export interface LoadTokenOptions {
  /** A file holding the token (one line; a trailing newline is ignored). @default {undefined} */
  tokenFile?: string | undefined;
  /** Read `SOCKIT_TOKEN` when no file is given and `--allow-env` grants it. @default {true} */
  useEnv?: boolean;
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
  const { tokenFile } = options;
  if (tokenFile !== undefined) {
    let text: string;
    try {
      const info = await Deno.stat(tokenFile);
      if (Deno.build.os !== "windows" && info.mode !== null && (info.mode & 0o077) !== 0) {
        throw new TokenError(
          tokenFile,
          `other users can access it (mode ${(info.mode & 0o777).toString(8)}); run chmod 600`,
        );
      }
      text = await Deno.readTextFile(tokenFile);
    } catch (error) {
      if (error instanceof TokenError) throw error;
      if (error instanceof Deno.errors.NotFound) {
        throw new TokenError(tokenFile, "no such file", { cause: error });
      }
      throw error;
    }
    return check(tokenFile, text.replace(/\r?\n$/, ""));
  }
  if (options.useEnv === false) return undefined;
  const granted = Deno.permissions.querySync({ name: "env", variable: TOKEN_ENV }).state ===
    "granted";
  const value = granted ? Deno.env.get(TOKEN_ENV) : undefined;
  return value === undefined || value === "" ? undefined : check(TOKEN_ENV, value);
}
