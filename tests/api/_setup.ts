/**
 * Setup for the public API tests: a server directory made the way a user
 * makes one (`initServerDir` + `addUser`), served by `listen()` from its
 * path, and alice's profile allowed to reach loopback only. Plus a
 * deadline for every test and small loopback targets.
 *
 * Exports:
 * - `startServer(opts?)` → `Setup` `{ dir, server, profilePath, close() }`
 * - `within(ms, what, fn)` → runs `fn`, failing with `what` if it takes longer than `ms`
 * - `serveOnce(handler)` → a loopback TCP listener that runs `handler` on one connection
 * - `readToEnd(reader)` → every byte until end of stream
 *
 * @module
 */
import { join } from "node:path";
import { listen, type TunnelServer } from "../../mod.ts";
import { addUser, initServerDir } from "../../lib/provision/mod.ts";

/** Routes that keep every destination on this machine. */
export const LOOPBACK_ROUTES: readonly string[] = ["127.0.0.1", "[::1]", "localhost"];

/** Options for {@linkcode startServer}. */
export interface SetupOptions {
  /** "tls" (default) or "tcp". */
  transport?: "tls" | "tcp";
  /** Edits server.yml's text as `init` wrote it (e.g. smaller `limits`). */
  editServer?: (text: string) => string;
  /** Text appended to alice's profile. */
  profileYaml?: string;
}

/** A server from a directory on disk and alice's profile for it. */
export interface Setup extends AsyncDisposable {
  dir: string;
  server: TunnelServer;
  /** alice's profile: routes 127.0.0.1, [::1], localhost. */
  profilePath: string;
  close(): Promise<void>;
}

/** Makes a server directory in a temp dir, starts `listen()` on it, and adds alice. */
export async function startServer(opts: SetupOptions = {}): Promise<Setup> {
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-api-" });
  let server: TunnelServer | undefined;
  const close = async () => {
    await server?.close();
    await Deno.remove(dir, { recursive: true });
  };
  try {
    await initServerDir(dir, { listen: "127.0.0.1:0" });
    const serverYml = join(dir, "server.yml");
    let text = await Deno.readTextFile(serverYml);
    if (opts.transport === "tcp") text = text.replace(/^transport: tls$/m, "transport: tcp");
    if (opts.editServer !== undefined) text = opts.editServer(text);
    await Deno.writeTextFile(serverYml, text);
    server = await listen(serverYml);
    const profilePath = join(dir, "alice.yml");
    await addUser("alice", {
      dir,
      out: profilePath,
      server: `127.0.0.1:${server.addr.port}`,
      routes: [...LOOPBACK_ROUTES],
    });
    if (opts.profileYaml !== undefined) {
      const p = await Deno.readTextFile(profilePath);
      await Deno.writeTextFile(profilePath, `${p.trimEnd()}\n\n${opts.profileYaml}\n`);
    }
    await server.reloadUsers();
    return { dir, server, profilePath, close, [Symbol.asyncDispose]: close };
  } catch (e) {
    await close().catch(() => {});
    throw e;
  }
}

/**
 * Runs `fn`; if it has not settled after `ms`, fails saying what the test
 * waited for (the test's own cleanup still runs when `fn` settles).
 */
export async function within<T>(ms: number, what: string, fn: () => Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Deadline: still waiting after ${ms} ms for ${what}`)),
      ms,
    );
  });
  try {
    return await Promise.race([fn(), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** A loopback listener serving one connection with `handler`. */
export interface OneShot extends AsyncDisposable {
  port: number;
  /** Settles when the handler finished (rejects with its error). */
  done: Promise<void>;
  close(): Promise<void>;
}

/** Listens on 127.0.0.1:0 and runs `handler` on the first connection, then closes it. */
export function serveOnce(handler: (conn: Deno.Conn) => Promise<void>): OneShot {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let conn: Deno.Conn | undefined;
  const done = (async () => {
    conn = await listener.accept();
    try {
      await handler(conn);
    } finally {
      try {
        conn.close();
      } catch {
        // already closed
      }
    }
  })();
  done.catch(() => {});
  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      listener.close();
      try {
        conn?.close();
      } catch {
        // already closed
      }
      await done.catch(() => {});
    })();
    return closed;
  };
  return {
    port: (listener.addr as Deno.NetAddr).port,
    done,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Reads everything until end of stream. */
export async function readToEnd(
  r: { read(p: Uint8Array): Promise<number | null> },
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(64 * 1024);
  for (;;) {
    const n = await r.read(buf);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
    total += n;
  }
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** Writes all of `p`. */
export async function writeAll(
  w: { write(p: Uint8Array): Promise<number> },
  p: Uint8Array,
): Promise<void> {
  let o = 0;
  while (o < p.length) o += await w.write(p.subarray(o));
}
