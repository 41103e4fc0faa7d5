/**
 * The `sockit` command line: parses arguments, calls the library, and maps
 * errors to exit codes (one table, `lib/cli/exit_codes.ts`: 0 success,
 * 1 failure, 2 usage error, 3 a changed certificate; exec's own failures 255).
 *
 * ```sh
 * deno run --allow-net=127.0.0.1:7070 jsr:@sockit/sockit/cli server
 * ```
 *
 * @module
 */

// Only what every command needs is imported up front; each subcommand's
// module is loaded when it runs (see main).
import denoConfig from "./deno.json" with { type: "json" };
import {
  COMMANDS,
  COMPLETIONS_OPTIONS,
  COMPLETIONS_USAGE,
  TOP_LEVEL,
  USAGE,
} from "./lib/cli/usage.ts";
import { describe, parse, print, unknownName, UsageError } from "./lib/cli/common.ts";
import { EXEC_OWN_FAILURE, EXIT, failureExitCode } from "./lib/cli/exit_codes.ts";

/** One line for a usage error, and where to read more: `error: … (see "sockit help exec")`. */
function usageLine(error: UsageError): string {
  const command = error.usage === USAGE
    ? undefined
    : COMMANDS.find((c) => c.usage === error.usage)?.name;
  const help = command === undefined ? "sockit help" : `sockit help ${command}`;
  return `error: ${error.message} (see "${help}")\n`;
}

async function completionsCommand(args: string[]): Promise<number> {
  const { values, positionals } = parse(args, COMPLETIONS_OPTIONS, COMPLETIONS_USAGE);
  if (values.help) {
    print(Deno.stdout, COMPLETIONS_USAGE);
    return 0;
  }
  const { completionScript, SHELLS } = await import("./lib/cli/completions.ts");
  const [shell, extra] = positionals;
  if (shell === undefined) throw new UsageError("missing the shell", COMPLETIONS_USAGE);
  if (extra !== undefined) {
    throw new UsageError(`unexpected argument "${extra}"`, COMPLETIONS_USAGE);
  }
  const known = SHELLS.find((s) => s === shell);
  if (known === undefined) {
    throw new UsageError(unknownName("shell", shell, SHELLS), COMPLETIONS_USAGE);
  }
  print(
    Deno.stdout,
    completionScript(known, {
      program: "sockit",
      commands: COMMANDS,
      globalFlags: [
        { long: "version", short: "V", description: "print the version" },
        { long: "help", short: "h", description: "show the usage" },
      ],
    }),
  );
  return 0;
}

/**
 * Runs the command line with `args` and returns the exit code.
 *
 * @param args the arguments after the program name
 * @returns the exit code: 0 on success, 1 on failure, 2 on a usage error, 3
 *   when the server's certificate changed; exec returns the remote command's
 *
 * @example Print the version
 * ```ts ignore
 * import { main } from "@sockit/sockit/cli";
 *
 * const code = await main(["--version"]);
 * ```
 */

export async function main(args: string[]): Promise<number> {
  const [command, ...rest] = args;
  try {
    switch (command) {
      // Each command loads its own code: `sockit exec` never loads the
      // server or upload modules (start-up is most of a one-shot command).
      case "server":
        return await (await import("./lib/cli/server.ts")).serverCommand(rest);
      case "client":
        return await (await import("./lib/cli/client.ts")).clientCommand(rest);
      case "upload":
        return await (await import("./lib/cli/upload.ts")).uploadCommand(rest);
      case "exec":
        try {
          return await (await import("./lib/cli/exec.ts")).execCommand(rest);
        } catch (error) {
          // exec's own failures must not look like a remote exit code: 255, as ssh uses it.
          print(
            Deno.stderr,
            error instanceof UsageError ? usageLine(error) : `error: ${describe(error)}\n`,
          );
          return EXEC_OWN_FAILURE;
        }
      case "--version":
      case "-V":
        print(Deno.stdout, `sockit ${denoConfig.version}\n`);
        return 0;
      case "completions":
        return await completionsCommand(rest);
      case "help":
      case "--help":
      case "-h": {
        const topic = rest[0];
        const usage = topic === undefined || topic === "--help" || topic === "-h"
          ? USAGE
          : COMMANDS.find((c) => c.name === topic)?.usage;
        if (usage === undefined) {
          throw new UsageError(unknownName("command", topic!, COMMANDS.map((c) => c.name)), USAGE);
        }
        print(Deno.stdout, usage);
        return 0;
      }
      case undefined:
        print(Deno.stderr, USAGE);
        return EXIT.usage;
      default:
        throw new UsageError(unknownName("command", command, TOP_LEVEL), USAGE);
    }
  } catch (error) {
    if (error instanceof UsageError) {
      print(Deno.stderr, usageLine(error));
      return EXIT.usage;
    }
    print(Deno.stderr, `error: ${describe(error)}\n`);
    return failureExitCode(error);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
