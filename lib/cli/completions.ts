/**
 * Shell completion scripts for bash, zsh and fish, generated from the CLI's
 * own tables: each subcommand's `parseArgs` options (the flags, which take a
 * value, which repeat, short names) and its usage text (each flag's value
 * name and description). Nothing is listed twice by hand, and a flag missing
 * from the usage text is an error, not a silent gap. Private to the CLI:
 * `mod.ts` does not re-export it.
 *
 * @module
 */

/** The shells a completion script can be generated for. */
export type Shell = "bash" | "zsh" | "fish";

/** The shells, in the order the CLI lists them. */
export const SHELLS: readonly Shell[] = ["bash", "zsh", "fish"];

/** One flag as `node:util`'s `parseArgs` declares it. */
export interface CompletionOption {
  /** Whether the flag takes a value. */
  type: "string" | "boolean";
  /** Whether the flag may be repeated. @default {false} */
  multiple?: boolean;
  /** Its one-letter alias. @default {undefined} */
  short?: string;
}

/** A subcommand to complete. */
export interface CompletionCommand {
  /** Its name, such as `server`. */
  name: string;
  /** A few words on what it does, shown by zsh and fish. */
  summary: string;
  /** Its flags, the table its `parseArgs` call uses. */
  options: Readonly<Record<string, CompletionOption>>;
  /** Its usage text, which lists every flag of `options`. */
  usage: string;
  /**
   * What its plain arguments complete to: file names, a fixed list of words,
   * or nothing. @default {undefined} (nothing)
   */
  operands?: "files" | readonly string[];
}

/** The program to complete. */
export interface CompletionSpec {
  /** The command name, such as `sockit`. */
  program: string;
  /** The subcommands. */
  commands: readonly CompletionCommand[];
  /** Flags taken in place of a subcommand, such as `--version`. */
  globalFlags: readonly { long: string; short?: string; description: string }[];
}

/** A flag with what its usage text says of it. */
interface Flag {
  long: string;
  short: string | undefined;
  repeatable: boolean;
  /** The value's name (`ADDR`, `FILE`), `undefined` for a boolean flag. */
  value: string | undefined;
  description: string;
}

/**
 * The flags of `command`, each with the value name and description its
 * usage line gives: `  -l, --listen ADDR   address to listen on, ...`,
 * continued on lines indented further. The description stops at its first
 * semicolon, so that menus stay narrow.
 */
function flagsOf(command: CompletionCommand): Flag[] {
  const lines = command.usage.split("\n");
  return Object.entries(command.options).map(([long, option]) => {
    const head = new RegExp(`^ +(?:-\\w, )?--${long}(?: (\\S+))?(?= |$)(.*)$`);
    const at = lines.findIndex((line) => head.test(line));
    if (at === -1) {
      throw new Error(
        `Cannot complete "${command.name} --${long}": its usage text does not list it`,
      );
    }
    const [, valueName, rest] = lines[at]!.match(head)!;
    const text = [rest!.trim()];
    for (let i = at + 1; i < lines.length && /^ {20,}\S/.test(lines[i]!); i++) {
      text.push(lines[i]!.trim());
    }
    const description = text.filter(Boolean).join(" ").split("; ")[0]!;
    const value = option.type === "string" ? valueName ?? "VALUE" : undefined;
    return { long, short: option.short, repeatable: option.multiple ?? false, value, description };
  });
}

/**
 * Whether a flag's value is a local file, so file names complete (a DIR may
 * be the server's, as `--to` and `--cwd` are: not completed).
 */
function takesFile(flag: Flag): boolean {
  return flag.value === "FILE";
}

/**
 * A completion script for `shell` that completes the subcommands, each
 * subcommand's flags, and file names where a flag or argument takes a path.
 *
 * @param shell the shell to generate for
 * @param spec the program, its subcommands and their flags
 * @returns the script, for `source` (bash, zsh), an `fpath` file (zsh) or
 *   `~/.config/fish/completions` (fish)
 * @throws {Error} when a flag of a subcommand's options is missing from its usage text
 */
export function completionScript(shell: Shell, spec: CompletionSpec): string {
  const commands = spec.commands.map((command) => ({ command, flags: flagsOf(command) }));
  switch (shell) {
    case "bash":
      return bashScript(spec, commands);
    case "zsh":
      return zshScript(spec, commands);
    case "fish":
      return fishScript(spec, commands);
  }
}

type Resolved = readonly { command: CompletionCommand; flags: Flag[] }[];

/** The spellings of a flag: `-l`, `--listen`. */
function spellings(flag: Flag): string[] {
  return flag.short === undefined ? [`--${flag.long}`] : [`-${flag.short}`, `--${flag.long}`];
}

function bashScript(spec: CompletionSpec, commands: Resolved): string {
  const fn = `_${spec.program.replace(/\W/g, "_")}`;
  const top = [
    ...commands.map(({ command }) => command.name),
    ...spec.globalFlags.map((f) => `--${f.long}`),
  ];
  const cases = commands.map(({ command, flags }) => {
    const valued = flags.filter((f) => f.value !== undefined).flatMap(spellings);
    const words = Array.isArray(command.operands) ? command.operands.join(" ") : "";
    const offer = (list: string) => `COMPREPLY=($(compgen -W '${list}' -- "$cur"))`;
    return [
      `    ${command.name})`,
      // A flag's value: no list to offer, so bash's default (file names) applies.
      ...(valued.length ? [`      case $prev in ${valued.join("|")}) return ;; esac`] : []),
      ...(flags.length && words
        ? [
          `      if [[ $cur == -* ]]; then`,
          `        ${offer(flags.flatMap(spellings).join(" "))}`,
        ]
        : flags.length
        ? [`      [[ $cur == -* ]] && ${offer(flags.flatMap(spellings).join(" "))}`]
        : []),
      ...(flags.length && words ? ["      else", `        ${offer(words)}`, "      fi"] : []),
      ...(!flags.length && words ? [`      ${offer(words)}`] : []),
      "      ;;",
    ].join("\n");
  });
  return `# bash completion for ${spec.program}: generated by "${spec.program} completions bash".
# Load it with: source <(${spec.program} completions bash)
${fn}() {
  local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]} i
  if ((COMP_CWORD == 1)); then
    COMPREPLY=($(compgen -W '${top.join(" ")}' -- "$cur"))
    return
  fi
  # After "--" the words are another program's (exec): complete file names.
  for ((i = 2; i < COMP_CWORD; i++)); do
    [[ \${COMP_WORDS[i]} == -- ]] && return
  done
  case \${COMP_WORDS[1]} in
${cases.join("\n")}
  esac
}
complete -o default -F ${fn} ${spec.program}
`;
}

/** Text for inside single quotes in zsh, escaped for an `_arguments` spec. */
function zshQuote(text: string): string {
  return text.replace(/[\\[\]:$`]/g, "\\$&").replace(/'/g, "'\\''");
}

function zshScript(spec: CompletionSpec, commands: Resolved): string {
  const fn = `_${spec.program.replace(/\W/g, "_")}`;
  const globals = spec.globalFlags.map((f) => {
    const names = f.short === undefined ? `--${f.long}` : `{-${f.short},--${f.long}}`;
    return `    '(- *)'${names}'[${zshQuote(f.description)}]'`;
  });
  const described = commands.map(({ command }) =>
    `    '${zshQuote(command.name)}:${zshQuote(command.summary)}'`
  );
  const cases = commands.map(({ command, flags }) => {
    const specs = flags.map((f) => {
      const names = spellings(f);
      // A flag that cannot repeat is excluded once given (with its other spelling).
      const prefix = f.repeatable ? "'*'" : `'(${names.join(" ")})'`;
      const action = f.value === undefined
        ? ""
        : `:${zshQuote(f.value)}:${takesFile(f) ? "_files" : " "}`;
      const spelled = names.length === 1 ? names[0] : `{${names.join(",")}}`;
      return `        ${prefix}${spelled}'[${zshQuote(f.description)}]${action}'`;
    });
    const operands = command.operands === "files"
      ? ["        '*:file:_files'"]
      : command.operands
      ? [`        '1:${zshQuote(command.name)}:(${command.operands.join(" ")})'`]
      : ["        '*:argument: '"]; // accepted, nothing to offer (an address, a command)
    return [
      `      ${command.name})`,
      `        _arguments -s -S \\`,
      [...specs, ...operands].join(" \\\n"),
      "        ;;",
    ].join("\n");
  });
  return `#compdef ${spec.program}
# zsh completion for ${spec.program}: generated by "${spec.program} completions zsh".
# Save it as _${spec.program} in a directory of $fpath, or load it with:
# source <(${spec.program} completions zsh)

${fn}() {
  local context state state_descr line
  typeset -A opt_args
  _arguments -C \\
${globals.join(" \\\n")} \\
    '1:command:->command' \\
    '*::argument:->argument'
  case $state in
    command)
      local -a commands
      commands=(
${described.map((d) => "    " + d).join("\n")}
      )
      _describe -t commands '${zshQuote(spec.program)} command' commands
      ;;
    argument)
      case $words[1] in
${cases.map((c) => c.replace(/^/gm, "    ")).join("\n")}
      esac
      ;;
  esac
}

if [[ $funcstack[1] == ${fn} ]]; then
  ${fn} "$@"
else
  compdef ${fn} ${spec.program}
fi
`;
}

/** Text in fish's single quotes. */
function fishQuote(text: string): string {
  return `'${text.replace(/[\\']/g, "\\$&")}'`;
}

function fishScript(spec: CompletionSpec, commands: Resolved): string {
  const c = `complete -c ${spec.program}`;
  const lines = [
    `# fish completion for ${spec.program}: generated by "${spec.program} completions fish".`,
    `# Save it as ~/.config/fish/completions/${spec.program}.fish`,
    "",
    "# File names only where a flag or argument takes a path.",
    `${c} -f`,
    ...spec.globalFlags.map((f) =>
      `${c} -n __fish_use_subcommand${
        f.short === undefined ? "" : ` -s ${f.short}`
      } -l ${f.long} ` +
      `-d ${fishQuote(f.description)}`
    ),
  ];
  for (const { command } of commands) {
    lines.push(
      `${c} -n __fish_use_subcommand -a ${command.name} -d ${fishQuote(command.summary)}`,
    );
  }
  for (const { command, flags } of commands) {
    const when = `-n ${fishQuote(`__fish_seen_subcommand_from ${command.name}`)}`;
    lines.push("");
    for (const f of flags) {
      const short = f.short === undefined ? "" : ` -s ${f.short}`;
      const value = f.value === undefined ? "" : takesFile(f) ? " -r -F" : " -x";
      lines.push(`${c} ${when}${short} -l ${f.long}${value} -d ${fishQuote(f.description)}`);
    }
    if (command.operands === "files") lines.push(`${c} ${when} -F`);
    else if (command.operands) {
      lines.push(`${c} ${when} -x -a ${fishQuote(command.operands.join(" "))}`);
    }
  }
  return lines.join("\n") + "\n";
}
