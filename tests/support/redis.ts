/**
 * A private Debian `redis-server` for the fleet tests: its own temporary
 * directory, a free loopback port, no configuration file of the machine's,
 * the append-only file on (so a stop and a start keep the data, as a real
 * deployment's persistence does). Every wait has a deadline, and the process
 * is killed when the running test's budget runs out.
 *
 * Exports: `startRedis(opts?)` → `RedisServer` `{ port, url, dir, stop(),
 * start(), close() }`, and `hasRedis()`.
 *
 * @example
 * ```ts ignore
 * await using redis = await startRedis();
 * // store: { url: redis.url } in each server's settings
 * await redis.stop();  // an outage: connections refused
 * await redis.start(); // back on the same port, with the same data
 * ```
 *
 * @module
 */
import { onTimeout, step, withDeadline } from "./deadline.ts";

/** A running (or stopped) private redis-server. */
export interface RedisServer extends AsyncDisposable {
  /** The loopback port it listens on (kept across stop and start). */
  readonly port: number;
  /** `redis://127.0.0.1:PORT`, `rediss://…` with TLS (the password, when set, is not in it). */
  readonly url: string;
  /** Its working directory (append-only file, log). */
  readonly dir: string;
  /** True while the process runs. */
  readonly running: boolean;
  /** Stops the process (SIGTERM, or SIGKILL with `kill`), keeping the directory. */
  stop(opts?: { kill?: boolean }): Promise<void>;
  /** Starts it again on the same port with the same directory. */
  start(): Promise<void>;
  /** Stops it and removes the directory. */
  close(): Promise<void>;
}

/** Options for {@linkcode startRedis}. */
export interface RedisOptions {
  /** `requirepass`: clients must AUTH with it. */
  password?: string;
  /**
   * Serve TLS only (`tls-port`, no plain port) with this certificate chain
   * and key (PEM); clients need no certificate of their own.
   */
  tls?: { certPem: string; keyPem: string };
  /**
   * False: no persistence at all (no append-only file, no snapshots), so a
   * stop and a start lose every key, like a Redis restarted without it.
   */
  persist?: boolean;
}

/** True when `redis-server` runs here. */
export async function hasRedis(): Promise<boolean> {
  try {
    const out = await new Deno.Command("redis-server", { args: ["--version"], stdout: "null" })
      .output();
    return out.success;
  } catch {
    return false;
  }
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function listening(port: number): Promise<boolean> {
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    c.close();
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts redis-server on a free loopback port in a new temporary directory.
 *
 * @example
 * ```ts ignore
 * const redis = await startRedis({ password: "s3cret-s3cret" });
 * await redis.close();
 * ```
 */
export async function startRedis(opts: RedisOptions = {}): Promise<RedisServer> {
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-redis-" });
  const port = freePort();
  const tls = opts.tls;
  if (tls !== undefined) {
    await Deno.writeTextFile(`${dir}/tls.crt`, tls.certPem);
    await Deno.writeTextFile(`${dir}/tls.key`, tls.keyPem, { mode: 0o600 });
  }
  const args = [
    "--bind",
    "127.0.0.1",
    ...(tls === undefined ? ["--port", String(port)] : [
      "--port",
      "0",
      "--tls-port",
      String(port),
      "--tls-cert-file",
      `${dir}/tls.crt`,
      "--tls-key-file",
      `${dir}/tls.key`,
      "--tls-auth-clients",
      "no",
    ]),
    "--dir",
    dir,
    "--save",
    "",
    ...(opts.persist === false
      ? ["--appendonly", "no"]
      : ["--appendonly", "yes", "--appendfsync", "always"]),
    "--daemonize",
    "no",
    "--logfile",
    "redis.log",
    ...(opts.password === undefined ? [] : ["--requirepass", opts.password]),
  ];
  let child: Deno.ChildProcess | undefined;
  let forget = () => {};
  const kill = (sig: Deno.Signal) => {
    try {
      child?.kill(sig);
    } catch {
      // already exited
    }
  };

  async function start(): Promise<void> {
    if (child !== undefined) return;
    const c = new Deno.Command("redis-server", {
      args,
      cwd: dir,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    child = c;
    forget = onTimeout(() => kill("SIGKILL"));
    let exited = false;
    c.status.then(() => exited = true);
    await step(`redis-server to listen on 127.0.0.1:${port}`, async () => {
      const until = Date.now() + 10_000;
      while (!(await listening(port))) {
        if (exited) {
          const log = await Deno.readTextFile(`${dir}/redis.log`).catch(() => "");
          throw new Error(`redis-server exited at start: ${log.slice(-800)}`);
        }
        if (Date.now() > until) throw new Error(`redis-server did not listen on ${port}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    });
  }

  async function stop(o: { kill?: boolean } = {}): Promise<void> {
    const c = child;
    if (c === undefined) return;
    kill(o.kill ? "SIGKILL" : "SIGTERM");
    await withDeadline(c.status, 10_000, "redis-server to exit");
    child = undefined;
    forget();
  }

  let closed: Promise<void> | undefined;
  const close = () =>
    closed ??= (async () => {
      await stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    })();
  try {
    await start();
  } catch (e) {
    await close().catch(() => {});
    throw e;
  }
  return {
    port,
    url: `${tls === undefined ? "redis" : "rediss"}://127.0.0.1:${port}`,
    dir,
    get running() {
      return child !== undefined;
    },
    stop,
    start,
    close,
    [Symbol.asyncDispose]: close,
  };
}
