/**
 * Where sockit keeps its per-user files: the generated token, the TLS
 * identity a server makes for itself, and the fingerprints a client has
 * seen.
 *
 * @module
 */

function envVar(name: string): string | undefined {
  if (Deno.permissions.querySync({ name: "env", variable: name }).state !== "granted") {
    return undefined;
  }
  return Deno.env.get(name) || undefined;
}

/**
 * The path of `name` in sockit's configuration directory:
 * `$XDG_CONFIG_HOME/sockit/NAME`, else `$HOME/.config/sockit/NAME`
 * (`%APPDATA%\\sockit\\NAME` on Windows).
 *
 * @param name a file name, such as `"token"` or `"known_hosts"`
 * @returns the path, or `undefined` when `--allow-env` does not grant the
 *   variables it is built from or they are unset
 *
 * @example Where the known-hosts file lives
 * ```ts
 * import { defaultConfigPath } from "./config_path.ts";
 *
 * console.log(defaultConfigPath("known_hosts") ?? "no configuration directory here");
 * ```
 */
export function defaultConfigPath(name: string): string | undefined {
  const sep = Deno.build.os === "windows" ? "\\" : "/";
  const base = Deno.build.os === "windows"
    ? envVar("APPDATA")
    : envVar("XDG_CONFIG_HOME") ?? (envVar("HOME") && `${envVar("HOME")}/.config`);
  return base === undefined ? undefined : [base, "sockit", name].join(sep);
}
