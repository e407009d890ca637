/**
 * What the process benchmarks (`idle_streams.ts`, `resend_buffer.ts`)
 * share: `nitrosocks` commands of this checkout run as their own
 * processes, a target program run with `deno eval` that prints its port,
 * waiting for a port to listen, and stopping a process (SIGTERM, then
 * SIGKILL after 3 s).
 *
 * @module
 */
import { join } from "node:path";

const ROOT = new URL("..", import.meta.url).pathname;
const MAIN = join(ROOT, "main.ts");
import { PERMISSION_FLAGS } from "../scripts/compile.ts";

const FLAGS = PERMISSION_FLAGS;

/**
 * `deno run FLAGS main.ts ARGS` as a command; its stderr is shown when
 * `debug` is true, else dropped.
 *
 * @example
 * ```ts ignore
 * const server = nitrosocks(["server", "--config", yml], false).spawn();
 * ```
 */
export function nitrosocks(args: string[], debug: boolean): Deno.Command {
  return new Deno.Command("deno", {
    args: ["run", ...FLAGS, MAIN, ...args],
    stdout: "null",
    stderr: debug ? "inherit" : "null",
  });
}

/**
 * `nitrosocks init SRV` (listening on 127.0.0.1:`port`) and `nitrosocks
 * user add bench` (routes `127.0.0.1:*`: the targets), writing the profile
 * to `profile`.
 *
 * @example
 * ```ts ignore
 * await provision(join(dir, "srv"), join(dir, "bench.yml"), sport, false);
 * ```
 */
export async function provision(
  srv: string,
  profile: string,
  port: number,
  debug: boolean,
): Promise<void> {
  await nitrosocks(["init", srv, "--listen", `127.0.0.1:${port}`, "--force"], debug).output();
  // The targets are on loopback, which the server's egress.block keeps out of routes `*`.
  await nitrosocks([
    "user",
    "add",
    "bench",
    "--dir",
    srv,
    "--out",
    profile,
    "--force",
    "--routes",
    "127.0.0.1:*",
  ], debug).output();
}

/**
 * Spawns `nitrosocks server --config YML` and `nitrosocks client --config
 * PROFILE --socks 127.0.0.1:SOCKSPORT`, both logging errors only.
 *
 * @example
 * ```ts ignore
 * const { server, client } = spawnPair(yml, profile, cport, false);
 * ```
 */
export function spawnPair(
  yml: string,
  profile: string,
  socksPort: number,
  debug: boolean,
): { server: Deno.ChildProcess; client: Deno.ChildProcess } {
  const server = nitrosocks(["server", "--config", yml, "--log-level", "error"], debug).spawn();
  const client = nitrosocks([
    "client",
    "--config",
    profile,
    "--socks",
    `127.0.0.1:${socksPort}`,
    "--log-level",
    "error",
  ], debug).spawn();
  return { server, client };
}

/**
 * Runs `src` with `deno eval` and reads the port it prints first.
 *
 * @example
 * ```ts ignore
 * const { child, port } = await spawnTarget(`const l = Deno.listen({ port: 0 }); console.log(l.addr.port);`);
 * ```
 */
export async function spawnTarget(
  src: string,
): Promise<{ child: Deno.ChildProcess; port: number }> {
  const child = new Deno.Command("deno", { args: ["eval", src], stdout: "piped" }).spawn();
  const reader = child.stdout.getReader();
  const first = new TextDecoder().decode((await reader.read()).value);
  reader.releaseLock();
  return { child, port: Number(first.trim()) };
}

/**
 * A loopback port nothing listens on (bound, then released).
 *
 * @example
 * ```ts ignore
 * const port = freePort();
 * ```
 */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

/**
 * Waits until something accepts on 127.0.0.1:`port`; throws once
 * `Date.now()` passes `deadline`.
 *
 * @example
 * ```ts ignore
 * await waitPort(port, Date.now() + 30_000);
 * ```
 */
export async function waitPort(port: number, deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`Nothing listens on 127.0.0.1:${port} in time`);
}

/**
 * SIGTERM, up to 3 s for the process to exit, then SIGKILL.
 *
 * @example
 * ```ts ignore
 * await stop(server);
 * ```
 */
export async function stop(p: Deno.ChildProcess): Promise<void> {
  try {
    p.kill("SIGTERM");
  } catch {
    // already gone
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([p.status, new Promise((r) => (timer = setTimeout(r, 3000)))]);
  clearTimeout(timer);
  try {
    p.kill("SIGKILL");
  } catch {
    // already gone
  }
}
