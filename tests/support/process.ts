/**
 * Child processes with a deadline: past it (or past the running test's
 * budget) the process is killed and its output promise rejects with a
 * `DeadlineError` naming the command line.
 *
 * Exports: `spawnWithDeadline(cmd, options, timeoutMs, meaning?)` →
 * `Spawned` (`child`, `output`, `what`, `kill()`),
 * `describeCommand(cmd, args)`, and `waitListening(hostname, port, what)`.
 *
 * @module
 */
import { DeadlineError, onTimeout, scaledMs, step, waitFor } from "./deadline.ts";

/** A spawned process and its output. */
export interface Spawned {
  child: Deno.ChildProcess;
  /** "CMD ARGS… to exit", as a missed deadline names it. */
  what: string;
  /** The collected output; rejects with a `DeadlineError` once the deadline killed it. */
  output: Promise<Deno.CommandOutput>;
  /** SIGKILL (no error if it already exited). */
  kill(): void;
}

/**
 * Spawns `cmd` and collects its output (`stdout`/`stderr` must be "piped"
 * or "null"), killing it after `timeoutMs` (scaled, see `deadline.ts`).
 * `meaning` says what its exit stands for, for the deadline's message.
 *
 * @example
 * ```ts ignore
 * const p = spawnWithDeadline("curl", { args: ["-sS", url], stdout: "piped" }, 60_000);
 * const out = await p.output; // or a DeadlineError: "timed out after 60 s waiting for: curl -sS … to exit"
 * ```
 */
export function spawnWithDeadline(
  cmd: string,
  options: Deno.CommandOptions,
  timeoutMs: number,
  meaning?: string,
): Spawned {
  const child = new Deno.Command(cmd, options).spawn();
  const what = `${describeCommand(cmd, options.args ?? [])} to exit` +
    (meaning === undefined ? "" : ` (${meaning})`);
  const ms = scaledMs(timeoutMs);
  let timedOut = false;
  const kill = () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
  };
  const forget = onTimeout(kill);
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, ms);
  const output = step(
    what,
    child.output().then((out) => {
      if (timedOut) throw new DeadlineError(what, ms);
      return out;
    }).finally(() => {
      clearTimeout(timer);
      forget();
    }),
  );
  return { child, what, output, kill };
}

/**
 * `cmd args…` shortened for a message: the program's base name, at most
 * 100 characters.
 *
 * @example
 * ```ts ignore
 * describeCommand("/usr/bin/curl", ["-sS", "http://127.0.0.1:8080/"]); // "curl -sS http://127.0.0.1:8080/"
 * ```
 */
export function describeCommand(cmd: string, args: readonly (string | URL)[]): string {
  const line = [cmd.split("/").at(-1) ?? cmd, ...args.map(String)].join(" ");
  return line.length <= 100 ? line : `${line.slice(0, 99)}…`;
}

/**
 * Waits (bounded, see `waitFor`) until something accepts TCP connections
 * on `hostname:port`, e.g. a server program just spawned.
 *
 * @example
 * ```ts ignore
 * await waitListening("127.0.0.1", port, "python3 -m http.server");
 * ```
 */
export async function waitListening(
  hostname: string,
  port: number,
  what: string,
  ms = 30_000,
): Promise<void> {
  await waitFor(
    `${what} to listen on ${hostname}:${port}`,
    async () => {
      try {
        (await Deno.connect({ hostname, port })).close();
        return true;
      } catch {
        return false;
      }
    },
    ms,
    50,
  );
}
