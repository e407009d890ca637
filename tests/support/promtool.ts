/**
 * The real `promtool check metrics` (Debian package `prometheus`) over
 * exposition text: parse errors and lint problems (a counter without
 * `_total`, a missing HELP, …) make it fail.
 *
 * @module
 */

/** What promtool said. */
export interface PromtoolResult {
  /** 0: valid and lint-clean. */
  code: number;
  output: string;
}

/**
 * Runs `promtool check metrics` on `text` with a deadline; undefined when
 * promtool is not installed (a test then says it skipped that part).
 *
 * @example
 * ```ts ignore
 * const r = await promtoolCheck(await (await fetch(url)).text());
 * ```
 */
export async function promtoolCheck(
  text: string,
): Promise<PromtoolResult | undefined> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("promtool", {
      args: ["check", "metrics"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  try {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(text));
    await w.close();
    const out = await child.output();
    const dec = new TextDecoder();
    return { code: out.code, output: dec.decode(out.stdout) + dec.decode(out.stderr) };
  } finally {
    clearTimeout(timer);
  }
}
