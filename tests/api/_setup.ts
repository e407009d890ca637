/**
 * Setup for the public API tests: a server directory made the way a user
 * makes one (`initServerDir` + `addUser`), served by `listen()` from its
 * path, and alice's profile allowed to reach loopback only. Plus small
 * loopback targets. (Deadlines: `support/deadline.ts`.)
 *
 * Exports:
 * - `startServer(opts?)` → `Setup` `{ dir, server, profilePath, close() }`
 * - `serveOnce(handler)` → a loopback TCP listener that runs `handler` on one connection
 * - `readToEnd(reader)`, `writeAll(writer, bytes)` (from `support/io.ts`)
 *
 * @module
 */
import { join } from "node:path";
import { listen, type TunnelServer } from "../../mod.ts";
import { addUser, initServerDir } from "../../lib/provision/mod.ts";
import { onTimeout, step } from "../support/deadline.ts";
import { serveConnections } from "../support/serve.ts";

export { readToEnd, writeAll } from "../support/io.ts";

/**
 * Routes that keep every destination on this machine. Loopback is in the
 * server's default `egress.block`, so the routes name it explicitly, as a
 * real user's would; `localhost` is reached through them (it resolves to
 * 127.0.0.1).
 */
export const LOOPBACK_ROUTES: readonly string[] = ["127.0.0.1:*", "[::1]:*"];

/** Options for {@linkcode startServer}. */
export interface SetupOptions {
  /** "tls" (default) or "tcp". */
  transport?: "tls" | "tcp";
  /** Edits server.yml's text as `init` wrote it (e.g. smaller `limits`). */
  editServer?: (text: string) => string;
  /** Text appended to alice's profile. */
  profileYaml?: string;
  /** alice's routes; default {@linkcode LOOPBACK_ROUTES}. */
  routes?: string[];
}

/** A server from a directory on disk and alice's profile for it. */
export interface Setup extends AsyncDisposable {
  dir: string;
  server: TunnelServer;
  /** alice's profile: routes `127.0.0.1:*` and `[::1]:*`. */
  profilePath: string;
  close(): Promise<void>;
}

/** Makes a server directory in a temp dir, starts `listen()` on it, and adds alice. */
export function startServer(opts: SetupOptions = {}): Promise<Setup> {
  return step("listen() on a fresh server directory", setUp(opts));
}

async function setUp(opts: SetupOptions): Promise<Setup> {
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-api-" });
  let server: TunnelServer | undefined;
  let closed: Promise<void> | undefined;
  const close = () => {
    closed ??= (async () => {
      forget();
      await server?.close();
      await Deno.remove(dir, { recursive: true });
    })();
    return closed;
  };
  const forget = onTimeout(close);
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
      routes: opts.routes ?? [...LOOPBACK_ROUTES],
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

/** A loopback listener serving one connection with `handler`. */
export interface OneShot extends AsyncDisposable {
  port: number;
  /** Settles when the handler finished (rejects with its error). */
  done: Promise<void>;
  close(): Promise<void>;
}

/** Listens on 127.0.0.1:0 and runs `handler` on the first connection, then closes it. */
export function serveOnce(handler: (conn: Deno.Conn) => Promise<void>): OneShot {
  let first: ((p: Promise<void>) => void) | undefined;
  const done = new Promise<void>((resolve) => (first = resolve));
  const served = serveConnections(Deno.listen({ hostname: "127.0.0.1", port: 0 }), (conn) => {
    if (first === undefined) return Promise.resolve(); // not the first: closed at once
    const task = handler(conn);
    first(task);
    first = undefined;
    return task;
  });
  done.catch(() => {});
  const close = async () => {
    await served.close();
    first?.(Promise.resolve()); // never connected: nothing to wait for
  };
  return { port: served.port, done, close, [Symbol.asyncDispose]: close };
}
