/**
 * Signalling a child and everything it started, as one process group.
 *
 * @module
 */

const isWindows = Deno.build.os === "windows";

/**
 * The process group of a child spawned with `detached: true`, which makes
 * the child the leader of a new group whose id is its pid. Signals go to the
 * whole group, so grandchildren are reached too. (On Windows, which has no
 * process groups, only the child itself is signalled.)
 *
 * A process that leaves the group on purpose (`setsid`, a daemon) is out of
 * reach; confining those takes cgroups or a container.
 *
 * @example Terminate a shell and the sleep it started
 * ```ts ignore
 * import { ProcessGroup } from "./process_group.ts";
 *
 * const child = new Deno.Command("sh", {
 *   args: ["-c", "sleep 60 & wait"],
 *   detached: true,
 * }).spawn();
 * const group = new ProcessGroup(child.pid, 1000);
 * group.terminate();
 * await child.status;
 * group.close();
 * ```
 */
export class ProcessGroup {
  /** The group id: the leader's pid. */
  readonly pid: number;
  readonly #grace: number;
  #killTimer: ReturnType<typeof setTimeout> | undefined;
  #terminating = false;

  /**
   * Creates a handle on the group led by `pid`.
   *
   * @param pid the group leader's pid
   * @param grace milliseconds between SIGTERM and SIGKILL in {@linkcode ProcessGroup.terminate}
   */
  constructor(pid: number, grace: number) {
    this.pid = pid;
    this.#grace = grace;
  }

  /** Whether {@linkcode ProcessGroup.terminate} has been called. */
  get terminating(): boolean {
    return this.#terminating;
  }

  /**
   * Sends `signal` to every process in the group.
   *
   * @param signal the signal
   * @returns false when no process of the group is left
   */
  signal(signal: Deno.Signal): boolean {
    try {
      Deno.kill(isWindows ? this.pid : -this.pid, signal);
      return true;
    } catch {
      // The group is gone (ESRCH): nothing left to signal.
      return false;
    }
  }

  /**
   * Sends SIGTERM to the group now and SIGKILL after the grace period,
   * unless {@linkcode ProcessGroup.kill} or {@linkcode ProcessGroup.close}
   * comes first. Later calls do nothing.
   */
  terminate(): void {
    if (this.#terminating) return;
    this.#terminating = true;
    if (!this.signal("SIGTERM")) return;
    this.#killTimer = setTimeout(() => this.kill(), this.#grace);
  }

  /** Sends SIGKILL to the group now. */
  kill(): void {
    clearTimeout(this.#killTimer);
    this.#terminating = true;
    this.signal("SIGKILL");
  }

  /**
   * Resolves once no process of the group is left, or once the grace
   * period has passed and the group was sent SIGKILL. Liveness is probed
   * with SIGCONT, which changes nothing for a running process; a zombie
   * that its new parent does not reap (a container without an init) also
   * answers the probe, so the wait is bounded by the grace period, never
   * longer.
   *
   * @param poll milliseconds between probes
   */
  async gone(poll = 25): Promise<void> {
    if (!isWindows) {
      const deadline = performance.now() + this.#grace;
      while (this.signal("SIGCONT")) {
        if (performance.now() >= deadline) {
          this.kill();
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, poll));
      }
    }
    this.close();
  }

  /** Cancels a pending SIGKILL; call once the group is known to be gone. */
  close(): void {
    clearTimeout(this.#killTimer);
  }
}
