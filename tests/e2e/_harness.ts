/**
 * End-to-end harness: a real NitroSocks server and client in this process,
 * on loopback, with a fresh server directory made the way a user makes one
 * (`initServerDir` + `addUser`), plus helpers to run external programs
 * (curl, nc, ssh, chromium) with a deadline.
 *
 * Exports:
 * - `startPair(opts?)` → `Pair`: server (TLS or TCP) on 127.0.0.1:0, user
 *   "alice" added and users reloaded, client with SOCKS5 on 127.0.0.1:0
 *   (and HTTP CONNECT when asked) dialing the server or a relay in front of
 *   it. `reloadUsers()` re-reads users.yml the way SIGHUP does. `close()`
 *   frees every socket, timer and file (also when the test's budget runs
 *   out, see `support/deadline.ts`).
 * - `startRelayedPair(startRelay, opts?)` → `{ target, pair, relay }`: an
 *   HTTP target and a pair whose client reaches the server through a relay.
 * - `startConfiguredServer(config, log, events?)` → a server with the users of
 *   `config.usersFile`, the way `nitrosocks server` starts one.
 * - `run(cmd, args, opts?)` → `{ code, stdout, stderr }`; past its
 *   deadline the program is killed and `run` throws a `DeadlineError`.
 * - `startEchoServer()` → a loopback TCP echo server (`support/serve.ts`).
 * - `freePort()` → a loopback port with nothing listening on it.
 * - `Logs`: captured log lines (`NITRO_E2E_LOG=1` also prints them), for
 *   failure messages and for tests of the log's wording. Tests assert on
 *   events instead: `pair.serverEvents` and `pair.clientEvents` record
 *   everything the server and the client report (`EventLog.of`, and
 *   `EventLog.waitFor` with a deadline).
 *
 * Routes default to loopback only, so nothing a test (or a browser) asks
 * for can leave the machine.
 *
 * @module
 */
import { join } from "node:path";
import {
  type ClientConfig,
  loadClientConfig,
  loadServerConfig,
  loadUsers,
  type ServerConfig,
} from "../../lib/config/mod.ts";
import { addUser, initServerDir } from "../../lib/provision/mod.ts";
import { reloadUsers } from "../../lib/cli/server_cmd.ts";
import { type ClientHandle, type ClientOptions, startClient } from "../../lib/tunnel/client.ts";
import { type ServerHandle, startServer } from "../../lib/tunnel/server.ts";
import { createLogger, EventHub, EventLog, type Logger } from "../../lib/observe/mod.ts";
import { onTimeout, step } from "../support/deadline.ts";
import { type HttpTarget, startHttpTarget } from "../support/http_target.ts";
import { spawnWithDeadline } from "../support/process.ts";

export { type EchoServer, startEchoServer } from "../support/serve.ts";

/**
 * Routes that keep every destination on this machine. Loopback is in the
 * server's default `egress.block`, so the routes name it explicitly, as a
 * real user's would; `localhost` is reached through them (it resolves to
 * 127.0.0.1).
 */
export const LOOPBACK_ROUTES: readonly string[] = ["127.0.0.1:*", "[::1]:*"];

/** Captured log lines of one pair. */
export class Logs {
  readonly lines: string[] = [];
  readonly #echo = Deno.env.get("NITRO_E2E_LOG") === "1";

  /** A debug-level logger writing here under `prefix`. */
  logger(prefix: string): Logger {
    return createLogger("debug", prefix, (l) => {
      if (this.lines.length < 100_000) this.lines.push(l);
      if (this.#echo) console.error(l);
    });
  }

  /** Lines matching `re`. */
  grep(re: RegExp): string[] {
    return this.lines.filter((l) => re.test(l));
  }
}

/** What a relay factory returns: where the client should dial instead of the server. */
export interface Via {
  port: number;
  /** CA the client should trust instead of the profile's (a forged one). */
  caPem?: string;
  close(): Promise<void>;
}

/** Facts about the started server, for building relays. */
export interface ServerInfo {
  port: number;
  /** The server's own TLS CA (TLS transport). */
  caPem: string | undefined;
  dir: string;
}

/** Options for {@linkcode startPair}. */
export interface PairOptions {
  /** Default "tls"; "ws"/"wss" serve the WebSocket at `wsPath`. */
  transport?: "tls" | "tcp" | "ws" | "wss";
  /** `ws.path` for the ws transports; default "/nitro/ws". */
  wsPath?: string;
  /**
   * alice's way in as a URL (`user add --url`), from the server and the
   * `via` in front of it; the client then dials what the URL names.
   */
  url?: (server: ServerInfo, via: Via | undefined) => string;
  /** alice's routes; default {@linkcode LOOPBACK_ROUTES}. */
  routes?: string[];
  /** RFC 1929 users on the client's SOCKS5 port. */
  socksUsers?: Record<string, string>;
  /** More users to add to the server (profiles written next to alice's). */
  extraUsers?: { name: string; routes?: string[] }[];
  /** Also serve HTTP CONNECT on the client (127.0.0.1:0). */
  httpConnect?: boolean;
  /** `socks5.fast_open` in alice's profile (default: the profile's default, true). */
  fastOpen?: boolean;
  /** Put something between client and server (it must be closed by `close`). */
  via?: (server: ServerInfo) => Promise<Via> | Via;
  /** Do not start the client. */
  noClient?: boolean;
  /** Open the tunnel only on the first request (default false: at start). */
  lazy?: boolean;
  /** Extra client options (caPem, server, openTimeoutMs). */
  client?: Partial<Pick<ClientOptions, "caPem" | "server" | "openTimeoutMs">>;
  /** `session:` settings for server.yml, e.g. `{ keepalive: "200ms", resume_grace: "1s" }`. */
  serverSession?: Record<string, string>;
  /** More top-level sections for server.yml, e.g. `admin:\n  listen: "127.0.0.1:0"`. */
  serverYaml?: string;
  /** Edits server.yml's text as `init` wrote it (for keys `init` already wrote). */
  editServer?: (text: string) => string;
  /** `session:` settings for alice's profile, e.g. `{ dead_after: "1s" }`. */
  clientSession?: Record<string, string>;
  /** Values for keys of server.yml's `limits:` section, e.g. `{ stream_window: "64KiB" }`. */
  serverLimits?: Record<string, string>;
  /** A `limits:` section for alice's profile, e.g. `{ max_streams: "1" }`. */
  clientLimits?: Record<string, string>;
  /** More top-level sections for alice's profile, e.g. `forwards:` or `dns:` (YAML text). */
  profileYaml?: string;
  /**
   * alice logs in with this password instead of a token (`user add
   * --password`, 4096 iterations); her profile gets `password.value` = `typed`
   * (default the same password), the way the client's prompt fills it in.
   */
  password?: { value: string; typed?: string };
}

/** A running server and client. */
export interface Pair extends AsyncDisposable {
  dir: string;
  server: ServerHandle;
  serverPort: number;
  /** alice's profile file (as `user add` wrote it, plus the test's options). */
  profilePath: string;
  profile: ClientConfig;
  /** Profiles of `extraUsers`, by name. */
  extraProfiles: Map<string, string>;
  /** Undefined with `noClient`. */
  client: ClientHandle | undefined;
  /** What `opts.via` made (the client dials it instead of the server). */
  via: Via | undefined;
  socksPort: number;
  httpPort: number | undefined;
  logs: Logs;
  /** Everything the server reported since it started. */
  serverEvents: EventLog;
  /** Everything the client reported since it started (nothing with `noClient`). */
  clientEvents: EventLog;
  /** Total streams the server's tunnels have carried. */
  serverStreams(): number;
  /** Re-reads users.yml into the server (what SIGHUP does); throws ConfigError. */
  reloadUsers(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Starts a server and client on loopback.
 *
 * @example
 * ```ts ignore
 * await using pair = await startPair({ transport: "tcp" });
 * const conn = await socksConnect(pair.socksPort, "127.0.0.1", target.port);
 * ```
 */
export function startPair(opts: PairOptions = {}): Promise<Pair> {
  return step("the server and client to start", pairUp(opts));
}

async function pairUp(opts: PairOptions): Promise<Pair> {
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-e2e-" });
  const logs = new Logs();
  const serverHub = new EventHub();
  const clientHub = new EventHub();
  const serverEvents = new EventLog(serverHub);
  const clientEvents = new EventLog(clientHub);
  let server: ServerHandle | undefined;
  let client: ClientHandle | undefined;
  let via: Via | undefined;
  let closed: Promise<void> | undefined;
  const closeAll = () => {
    closed ??= (async () => {
      forget();
      await client?.close();
      await server?.close();
      await via?.close();
      await Deno.remove(dir, { recursive: true });
      serverEvents.close();
      clientEvents.close();
    })();
    return closed;
  };
  const forget = onTimeout(closeAll);
  try {
    await initServerDir(dir, { listen: "127.0.0.1:0", name: "localhost" });
    const serverYml = join(dir, "server.yml");
    if (opts.transport !== undefined && opts.transport !== "tls") {
      const text = await Deno.readTextFile(serverYml);
      const ws = opts.transport === "ws" || opts.transport === "wss"
        ? `\nws:\n  path: ${JSON.stringify(opts.wsPath ?? "/nitro/ws")}\n`
        : "";
      await Deno.writeTextFile(
        serverYml,
        text.replace(/^transport: tls$/m, `transport: ${opts.transport}`) + ws,
      );
    }
    await addSessionSettings(serverYml, opts.serverSession);
    await setServerLimits(serverYml, opts.serverLimits);
    if (opts.editServer !== undefined) {
      await Deno.writeTextFile(serverYml, opts.editServer(await Deno.readTextFile(serverYml)));
    }
    if (opts.serverYaml !== undefined) {
      const text = await Deno.readTextFile(serverYml);
      await Deno.writeTextFile(serverYml, `${text.trimEnd()}\n\n${opts.serverYaml.trimEnd()}\n`);
    }
    const serverConfig = await loadServerConfig(serverYml);
    const serverLog = logs.logger("server");
    server = await startConfiguredServer(serverConfig, serverLog, serverHub);
    const serverPort = server.addr.port;
    const caPath = join(dir, "tls", "ca.crt");
    const info: ServerInfo = {
      port: serverPort,
      caPem: opts.transport === "tcp" ? undefined : await Deno.readTextFile(caPath),
      dir,
    };
    via = await opts.via?.(info);
    const profilePath = join(dir, "alice.yml");
    const url = opts.url?.(info, via);
    await addUser("alice", {
      dir,
      out: profilePath,
      ...(url === undefined ? { server: `127.0.0.1:${serverPort}` } : { url }),
      routes: opts.routes ?? [...LOOPBACK_ROUTES],
      ...(opts.password === undefined ? {} : { password: opts.password.value, iterations: 4096 }),
    });
    const extraProfiles = new Map<string, string>();
    for (const u of opts.extraUsers ?? []) {
      const out = join(dir, `${u.name}.yml`);
      await addUser(u.name, {
        dir,
        out,
        server: `127.0.0.1:${serverPort}`,
        routes: u.routes ?? [...LOOPBACK_ROUTES],
      });
      extraProfiles.set(u.name, out);
    }
    await reloadUsers(server, serverConfig.usersFile, serverLog);
    await editProfile(profilePath, opts);
    let profile = await loadClientConfig(profilePath);
    if (opts.password !== undefined && profile.password !== undefined) {
      const value = opts.password.typed ?? opts.password.value;
      profile = { ...profile, password: { ...profile.password, value } };
    }
    if (!opts.noClient) {
      const dialed = opts.client?.server ??
        (url === undefined ? { host: "127.0.0.1", port: via?.port ?? serverPort } : undefined);
      const clientOpts: ClientOptions = {
        profile,
        log: logs.logger("client"),
        events: clientHub,
        ...(dialed === undefined ? {} : { server: dialed }),
        socks: { host: "127.0.0.1", port: 0 },
        lazy: opts.lazy ?? false,
      };
      const caPem = opts.client?.caPem ?? via?.caPem;
      if (caPem !== undefined) clientOpts.caPem = caPem;
      if (opts.client?.openTimeoutMs !== undefined) {
        clientOpts.openTimeoutMs = opts.client.openTimeoutMs;
      }
      client = await startClient(clientOpts);
    }
    const srv = server;
    const pair: Pair = {
      dir,
      server: srv,
      serverPort,
      profilePath,
      profile,
      extraProfiles,
      client,
      via,
      socksPort: client?.socksAddr.port ?? 0,
      httpPort: client?.httpAddr?.port,
      logs,
      serverEvents,
      clientEvents,
      serverStreams: () => [...srv.sessions].reduce((n, s) => n + s.stats.streams, 0),
      reloadUsers: () => reloadUsers(srv, serverConfig.usersFile, serverLog),
      close: closeAll,
      [Symbol.asyncDispose]: closeAll,
    };
    return pair;
  } catch (e) {
    await closeAll().catch(() => {});
    throw e;
  }
}

/** An HTTP target and a pair whose client dials the server through a relay. */
export interface RelayedPair<R extends Via> extends AsyncDisposable {
  target: HttpTarget;
  pair: Pair;
  relay: R;
}

/**
 * Starts an HTTP target and a pair (`opts`) with `startRelay`'s relay
 * between client and server; disposing closes all three.
 *
 * @example
 * ```ts ignore
 * await using setup = await startRelayedPair((s) => startFaultRelay({ port: s.port }, faults), {
 *   transport: "tcp",
 * });
 * const { target, pair, relay } = setup;
 * ```
 */
export async function startRelayedPair<R extends Via>(
  startRelay: (server: ServerInfo) => R | Promise<R>,
  opts: Omit<PairOptions, "via"> = {},
): Promise<RelayedPair<R>> {
  const target = await startHttpTarget();
  let relay: R | undefined;
  try {
    const pair = await startPair({ ...opts, via: async (s) => (relay = await startRelay(s)) });
    const close = async () => {
      await pair.close();
      await target.close();
    };
    return { target, pair, relay: relay!, [Symbol.asyncDispose]: close };
  } catch (e) {
    await target.close();
    throw e;
  }
}

/**
 * Starts a server with the users of `config.usersFile`, the way
 * `nitrosocks server` does, reporting to `events` (a new hub when absent).
 *
 * @example
 * ```ts ignore
 * const server = await startConfiguredServer(await loadServerConfig(yml), logs.logger("server"));
 * ```
 */
export async function startConfiguredServer(
  config: ServerConfig,
  log: Logger,
  events?: EventHub,
): Promise<ServerHandle> {
  const { users } = await loadUsers(config.usersFile);
  return await startServer({ ...config, users, log, ...(events === undefined ? {} : { events }) });
}

/** Adds the test's SOCKS5 users and HTTP CONNECT port to the profile text. */
async function editProfile(path: string, opts: PairOptions): Promise<void> {
  let text = await Deno.readTextFile(path);
  const users = Object.entries(opts.socksUsers ?? {});
  const socks = [
    "socks5:",
    '  listen: "127.0.0.1:0"',
    ...(opts.fastOpen === undefined ? [] : [`  fast_open: ${opts.fastOpen}`]),
    ...(users.length === 0
      ? []
      : ["  users:", ...users.map(([u, p]) => `    ${JSON.stringify(u)}: ${JSON.stringify(p)}`)]),
  ].join("\n");
  text = text.replace(/^ {2}fast_open: .*\n/m, "").replace(/^socks5:\n {2}listen: .*$/m, socks);
  if (opts.httpConnect) text += 'http_connect:\n  listen: "127.0.0.1:0"\n';
  if (opts.profileYaml !== undefined) text = `${text.trimEnd()}\n\n${opts.profileYaml.trimEnd()}\n`;
  await Deno.writeTextFile(path, text, { mode: 0o600 });
  await addSessionSettings(path, opts.clientSession);
  await addSection(path, "limits", opts.clientLimits);
}

/** Sets keys of the `limits:` section `init` writes (each key must be there). */
async function setServerLimits(
  path: string,
  limits: Record<string, string> | undefined,
): Promise<void> {
  let text = await Deno.readTextFile(path);
  for (const [k, v] of Object.entries(limits ?? {})) {
    const line = new RegExp(`^  ${k}: .*$`, "m");
    if (!line.test(text)) throw new Error(`${path} has no limits.${k} to set`);
    text = text.replace(line, `  ${k}: ${yamlValue(v)}`);
  }
  await Deno.writeTextFile(path, text);
}

/** Appends a `session:` section (the files `init` and `user add` write have none). */
function addSessionSettings(
  path: string,
  settings: Record<string, string> | undefined,
): Promise<void> {
  return addSection(path, "session", settings);
}

/** Appends a top-level section the file does not have yet. */
async function addSection(
  path: string,
  name: string,
  settings: Record<string, string> | undefined,
): Promise<void> {
  const entries = Object.entries(settings ?? {});
  if (entries.length === 0) return;
  const text = await Deno.readTextFile(path);
  if (new RegExp(`^${name}:`, "m").test(text)) {
    throw new Error(`${path} already has a ${name} section`);
  }
  const section = entries.map(([k, v]) => `  ${k}: ${yamlValue(v)}`).join("\n");
  await Deno.writeTextFile(path, `${text.trimEnd()}\n\n${name}:\n${section}\n`);
}

/** A number or a unit value (`1000000`, `64KiB`, `200ms`) as a plain scalar; anything else quoted. */
function yamlValue(v: string): string {
  return /^[0-9][0-9A-Za-z.]*$/.test(v) ? v : JSON.stringify(v);
}

/** The result of {@linkcode run}. */
export interface RunResult {
  code: number;
  stdout: Uint8Array<ArrayBuffer>;
  stderr: string;
}

/** Options for {@linkcode run}. */
export interface RunOptions {
  /** Kill the program and throw a `DeadlineError` after this long (default 60 s). */
  timeoutMs?: number;
  stdin?: Uint8Array;
  env?: Record<string, string>;
  cwd?: string;
  /** What the program's exit stands for, added to the deadline's message. */
  meaning?: string;
}

/**
 * Runs a program to completion and collects its output. Past its deadline
 * (or the test's budget) the program is killed and `run` throws a
 * `DeadlineError` naming it.
 *
 * @example
 * ```ts ignore
 * const r = await run("curl", ["-s", url], { timeoutMs: 10_000 });
 * ```
 */
export async function run(cmd: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const p = spawnWithDeadline(
    cmd,
    {
      args,
      stdin: opts.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
      ...(opts.env === undefined ? {} : { env: opts.env }),
      ...(opts.cwd === undefined ? {} : { cwd: opts.cwd }),
    },
    opts.timeoutMs ?? 60_000,
    opts.meaning,
  );
  // Read the output while writing the input: a child that answers as it
  // reads (nc through an echo) would otherwise fill its stdout pipe and
  // stop reading stdin, and both sides would wait forever.
  if (opts.stdin !== undefined) {
    const w = p.child.stdin.getWriter();
    await w.write(opts.stdin).catch(() => {});
    await w.close().catch(() => {});
  }
  const out = await p.output;
  return { code: out.code, stdout: out.stdout, stderr: new TextDecoder().decode(out.stderr) };
}

/** Text of a run's stdout. */
export function text(r: RunResult): string {
  return new TextDecoder().decode(r.stdout);
}

/** A loopback port nothing listens on (bound, then released). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Compares `got` with the target's content from offset 0; returns the first differing index or -1. */
export function firstMismatch(got: Uint8Array, want: Uint8Array): number {
  const n = Math.min(got.length, want.length);
  for (let i = 0; i < n; i++) if (got[i] !== want[i]) return i;
  return got.length > want.length ? want.length : -1;
}
