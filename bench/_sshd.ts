/**
 * A throwaway OpenSSH server for the exec benchmark: generated host and
 * client keys and a minimal config in a temporary directory, listening on
 * 127.0.0.1 on a free port, run in the foreground (`sshd -D`) as a child of
 * the bench and stopped with it. The system's own sshd configuration, keys
 * and `~/.ssh` are never read or written.
 *
 * @module
 */

import { Proc } from "./_proc.ts";
import { sleep } from "./_time.ts";

/** Where sshd is looked for besides `PATH`: it often lives in an `sbin`. */
const SBIN_DIRS = ["/usr/sbin", "/usr/local/sbin", "/sbin"];

/**
 * The directory sshd insists on for privilege separation. Its package
 * creates it at boot through systemd, so on a machine without systemd it can
 * be missing; the bench then creates it (empty, as the package would).
 */
const PRIVSEP_DIR = "/run/sshd";

/** Longest life of the throwaway sshd, in seconds. */
const SSHD_LIFETIME_S = 900;

async function isFile(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isFile;
  } catch {
    return false;
  }
}

/**
 * Finds a program on `PATH` (and, for sshd, in the usual `sbin` directories).
 *
 * @param name the program, such as `"sshd"`
 * @returns its absolute path, or undefined
 */
export async function findProgram(name: string): Promise<string | undefined> {
  const dirs = (Deno.env.get("PATH") ?? "").split(":").filter((dir) => dir !== "");
  for (const dir of [...dirs, ...SBIN_DIRS]) {
    if (await isFile(`${dir}/${name}`)) return `${dir}/${name}`;
  }
  return undefined;
}

async function run(command: string, args: string[]): Promise<string> {
  const { success, code, stdout, stderr } = await new Deno.Command(command, {
    args,
    stdin: "null",
    signal: AbortSignal.timeout(20_000),
  }).output();
  const text = new TextDecoder().decode(stderr).trim();
  if (!success) throw new Error(`Cannot run ${command} ${args.join(" ")}: exit ${code}: ${text}`);
  return new TextDecoder().decode(stdout);
}

/** A free TCP port on 127.0.0.1 (free when this returns; sshd takes it right after). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

async function waitForPort(port: number, proc: Proc, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port });
      conn.close();
      return;
    } catch {
      await sleep(50);
    }
  }
  await proc.stop();
  throw new Error(`Cannot reach sshd on 127.0.0.1:${port}: nothing listened within ${ms} ms`);
}

/** A running throwaway sshd. Dispose of it to stop it (and its ControlMaster). */
export interface Sshd extends AsyncDisposable {
  /** The port on 127.0.0.1. */
  port: number;
  /** `ssh` arguments that reach it with the generated keys, before the command. */
  sshArgs: string[];
  /** The `ssh` program. */
  ssh: string;
  /**
   * Starts a ControlMaster connection; later `ssh` calls with
   * {@linkcode Sshd.masterArgs} reuse it. Sessions through it take options
   * such as `SetEnv` from the master, not from the later call.
   *
   * @param options more `ssh` arguments for the master, such as `["-o", "SetEnv=SHLVL=1"]`
   */
  startMaster(options?: string[]): Promise<void>;
  /** `ssh` arguments that go through the ControlMaster, before the command. */
  masterArgs: string[];
}

/** Why the ssh measurements cannot run, or undefined when they can. */
export type SshdUnavailable = { reason: string };

/**
 * Starts a throwaway sshd in `dir` (which must exist, empty, and be removed by
 * the caller afterwards).
 *
 * @param dir a private temporary directory
 * @returns the running server, or why there is none (sshd not installed, …)
 */
export async function startSshd(dir: string): Promise<Sshd | SshdUnavailable> {
  const sshd = await findProgram("sshd");
  const ssh = await findProgram("ssh");
  const keygen = await findProgram("ssh-keygen");
  if (!sshd || !ssh || !keygen) {
    const missing = [!sshd && "sshd", !ssh && "ssh", !keygen && "ssh-keygen"].filter(Boolean);
    return {
      reason: `${missing.join(", ")} not found (Debian/Ubuntu: apt-get install openssh-server)`,
    };
  }
  if (!(await Deno.stat(PRIVSEP_DIR).catch(() => undefined))) {
    try {
      await Deno.mkdir(PRIVSEP_DIR, { mode: 0o755 });
    } catch (error) {
      return { reason: `sshd needs ${PRIVSEP_DIR}, which cannot be created: ${error}` };
    }
  }
  await Deno.chmod(dir, 0o700);
  const hostKey = `${dir}/host_ed25519`;
  const clientKey = `${dir}/client_ed25519`;
  for (const key of [hostKey, clientKey]) {
    await run(keygen, ["-q", "-t", "ed25519", "-N", "", "-C", "sockit-bench", "-f", key]);
  }
  await Deno.copyFile(`${clientKey}.pub`, `${dir}/authorized_keys`);
  await Deno.chmod(`${dir}/authorized_keys`, 0o600);

  const port = freePort();
  const config = `${dir}/sshd_config`;
  await Deno.writeTextFile(
    config,
    [
      `ListenAddress 127.0.0.1:${port}`,
      `HostKey ${hostKey}`,
      `PidFile ${dir}/sshd.pid`,
      `AuthorizedKeysFile ${dir}/authorized_keys`,
      "PubkeyAuthentication yes",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PermitRootLogin prohibit-password",
      "UsePAM no",
      // The keys live in a temporary directory whose parents sshd would check.
      "StrictModes no",
      "PrintMotd no",
      "PrintLastLog no",
      "MaxStartups 100:30:200",
      "MaxSessions 100",
      // Lets a client send SHLVL=1: bash then skips ~/.bashrc for ssh commands.
      "AcceptEnv SHLVL",
      "LogLevel ERROR",
      "",
    ].join("\n"),
  );
  // The client trusts exactly the generated host key and writes nothing.
  const hostPub = (await Deno.readTextFile(`${hostKey}.pub`)).trim().split(" ");
  await Deno.writeTextFile(
    `${dir}/known_hosts`,
    `[127.0.0.1]:${port} ${hostPub[0]} ${hostPub[1]}\n`,
  );
  const sshConfig = `${dir}/ssh_config`;
  await Deno.writeTextFile(
    sshConfig,
    [
      "Host *",
      `  IdentityFile ${clientKey}`,
      "  IdentitiesOnly yes",
      `  UserKnownHostsFile ${dir}/known_hosts`,
      "  StrictHostKeyChecking yes",
      "  BatchMode yes",
      "  LogLevel ERROR",
      "",
    ].join("\n"),
  );
  await run(sshd, ["-t", "-f", config]);

  // `timeout` bounds its life should the bench itself be killed outright;
  // it passes the bench's SIGTERM on to sshd.
  const timeout = await findProgram("timeout");
  const args = ["-D", "-f", config, "-E", `${dir}/sshd.log`];
  const server = Proc.spawn({
    name: "sshd",
    command: timeout ?? sshd,
    args: timeout ? [`${SSHD_LIFETIME_S}`, sshd, ...args] : args,
  });
  await waitForPort(port, server, 10_000);

  const sshArgs = ["-F", sshConfig, "-p", String(port), "-o", "ControlPath=none"];
  const socket = `${dir}/cm.sock`;
  const masterArgs = ["-F", sshConfig, "-p", String(port), "-S", socket, "-o", "ControlMaster=no"];
  let master: Proc | undefined;

  return {
    port,
    ssh,
    sshArgs,
    masterArgs,
    async startMaster(options: string[] = []) {
      master = Proc.spawn({
        name: "ssh ControlMaster",
        command: ssh,
        args: [
          "-F",
          sshConfig,
          "-p",
          String(port),
          ...options,
          "-M",
          "-S",
          socket,
          "-N",
          "127.0.0.1",
        ],
      });
      // Ready once `ssh -O check` finds it, bounded.
      for (let tries = 0; tries < 100; tries++) {
        const { success } = await new Deno.Command(ssh, {
          args: [...masterArgs, "-O", "check", "127.0.0.1"],
          stdin: "null",
          stdout: "null",
          stderr: "null",
          signal: AbortSignal.timeout(5_000),
        }).output();
        if (success) return;
        await sleep(100);
      }
      throw new Error("Cannot start the ssh ControlMaster: not ready after 100 checks");
    },
    async [Symbol.asyncDispose]() {
      await master?.stop();
      await server.stop();
    },
  };
}
