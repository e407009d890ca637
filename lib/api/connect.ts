/**
 * `connect()`: a tunnel to a NitroSocks server from a client profile, and
 * connections through it.
 *
 * @module
 */
import type { ClientConfig } from "../config/mod.ts";
import { loadProfile } from "../tunnel/profile_source.ts";
import type { EventHub, Logger, LogLevel } from "../observe/mod.ts";
import {
  classifyHost,
  decodeReply,
  encodeRequest,
  Reply,
  replyName,
  Socks5Error,
} from "../socks5/mod.ts";
import type { ByteStream } from "../transport/types.ts";
import { formatHostPort } from "../wire/host_port.ts";
import { ClientTunnel } from "./_client_tunnel.ts";
import { checkTimeout, createConn } from "./_conn.ts";
import { abortable, resolveLog } from "./_options.ts";
import type { TunnelConn } from "./conn.ts";
import { dialDatagram } from "./_datagram.ts";
import type { TunnelDatagramConn } from "./datagram.ts";

/** How long the server may take to reach a target and answer, by default. */
const DEFAULT_DIAL_TIMEOUT_MS = 30_000;

/**
 * A parsed client profile: what `loadClientConfig` returns for the YAML
 * file `nitrosocks user add` writes (docs/CONFIG.md).
 */
export type ClientProfile = ClientConfig;

/** Options for {@linkcode connect}. */
export interface ConnectOptions {
  /** Aborting it cancels the connect, or closes the tunnel once connected. */
  signal?: AbortSignal;
  /**
   * Where log lines go: a level (to stderr) or a `Logger`. Default: no
   * log lines (`tunnel.events` reports what happens either way).
   */
  log?: LogLevel | Logger;
  /**
   * Report events here (becomes `tunnel.events`): subscribe before
   * connecting to see the first session start. Default: a new hub.
   */
  events?: EventHub;
  /** Dial this address instead of the profile's server (its TLS name and key stay). */
  server?: { hostname: string; port: number };
  /** Trust this CA certificate (PEM) for the server's TLS instead of the profile's. */
  caPem?: string;
}

/** Options for `Tunnel.dial`. */
export interface DialOptions {
  /** The target's host name or IP address, resolved by the server. */
  hostname: string;
  /** The target's port, 1-65535. */
  port: number;
  /**
   * "tcp" (default): a `TunnelConn`. "udp": a `TunnelDatagramConn`, whose
   * datagrams ride a UDP association (as the SOCKS5 port's UDP ASSOCIATE).
   */
  transport?: "tcp" | "udp";
  /**
   * How long the server may take to reach the target (TCP) or to open the
   * association (UDP) and answer (ms). Default 30 000.
   */
  timeoutMs?: number;
  /**
   * TCP: a write the tunnel cannot take within this many milliseconds,
   * because the peer stopped reading and the flow-control credit ran out,
   * fails with `PeerSlowError`. Default: writes wait as long as it takes.
   */
  writeTimeoutMs?: number;
  /** Aborting it cancels the dial (not the connection it made). */
  signal?: AbortSignal;
}

/**
 * An authenticated, encrypted session with a NitroSocks server that
 * carries any number of connections. It survives broken links: the client
 * reconnects, resumes the session and every connection goes on where it
 * stopped. `await using` closes it.
 *
 * @example
 * ```ts ignore
 * import { connect } from "../../mod.ts";
 * await using tunnel = await connect("alice.yml", { log: "warn" });
 * tunnel.events.subscribe((e) => console.log(e.type));
 * using conn = await tunnel.dial({ hostname: "example.com", port: 80 });
 * ```
 */
export interface Tunnel extends AsyncDisposable {
  /** The profile's user name. */
  readonly user: string;
  /** What happens to the tunnel: sessions, resumptions, streams. */
  readonly events: EventHub;
  /** True once `close()` was called (or the signal aborted). */
  readonly closed: boolean;
  /**
   * Opens a UDP association for datagrams to and from `hostname:port`
   * through the tunnel (`transport: "udp"`). The server checks every
   * datagram against the user's `udp:` routes and drops what they refuse.
   * Rejects with `Socks5Error` when the server refuses the association
   * (e.g. `Reply.NOT_ALLOWED` past the user's `max_streams`), with
   * `Deno.errors.TimedOut` when it did not answer in `timeoutMs`.
   */
  dial(options: DialOptions & { transport: "udp" }): Promise<TunnelDatagramConn>;
  /**
   * Opens a TCP connection to `hostname:port` through the tunnel, as seen
   * from the server. Rejects with `Socks5Error` carrying the server's
   * SOCKS5 reply code when the target is refused (`Reply.NOT_ALLOWED`: the
   * user's routes do not allow it; `Reply.CONNECTION_REFUSED`,
   * `Reply.HOST_UNREACHABLE`, ...: the server could not reach it); with
   * `Deno.errors.TimedOut` when the server did not answer in `timeoutMs`.
   */
  dial(options: DialOptions & { transport?: "tcp" }): Promise<TunnelConn>;
  /** Either, as `options.transport` says (for a transport only known at run time). */
  dial(options: DialOptions): Promise<TunnelConn | TunnelDatagramConn>;
  /** Ends the session gracefully (its connections are reset) and releases everything. */
  close(): Promise<void>;
}

/**
 * Opens a tunnel with a client profile: a path to its YAML file, a
 * `nitrosocks://` share link or a file holding one (a link that names the
 * server's CA by its hash fetches the CA and checks it first), or a profile
 * already parsed. Resolves once
 * the server has been reached and the login accepted; rejects with a
 * `TunnelError` saying what to check (server down, wrong key, login
 * refused), a `ConfigError` for a bad profile, or the signal's reason.
 *
 * @example Connect, dial a target and exchange bytes
 * ```ts
 * import { connect, listen } from "../../mod.ts";
 * import { addUser, initServerDir } from "../provision/mod.ts";
 *
 * // A server on loopback, and a profile for alice allowed to reach 127.0.0.1.
 * const dir = await Deno.makeTempDir();
 * await initServerDir(dir, { listen: "127.0.0.1:0" });
 * await using server = await listen(`${dir}/server.yml`);
 * await addUser("alice", {
 *   dir,
 *   out: `${dir}/alice.yml`,
 *   server: `127.0.0.1:${server.addr.port}`,
 *   routes: ["127.0.0.1"],
 * });
 * await server.reloadUsers();
 *
 * // A target that answers "pong".
 * using target = Deno.listen({ hostname: "127.0.0.1", port: 0 });
 * const answered = (async () => {
 *   using c = await target.accept();
 *   await c.read(new Uint8Array(4));
 *   await c.write(new TextEncoder().encode("pong"));
 * })();
 *
 * await using tunnel = await connect(`${dir}/alice.yml`);
 * using conn = await tunnel.dial({ hostname: "127.0.0.1", port: target.addr.port });
 * await conn.write(new TextEncoder().encode("ping"));
 * const reply = new Uint8Array(4);
 * await conn.readFull(reply, { timeoutMs: 10_000 });
 * await answered;
 * if (new TextDecoder().decode(reply) !== "pong") throw new Error("unexpected reply");
 * await tunnel.close();
 * await server.close(); // before its directory goes: closing writes its counters there
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function connect(
  profile: string | ClientProfile,
  options: ConnectOptions = {},
): Promise<Tunnel> {
  const signal = options.signal;
  signal?.throwIfAborted();
  const config = typeof profile === "string" ? await loadProfile(profile) : profile;
  const client = new ClientTunnel({
    profile: config,
    log: resolveLog(options.log, "nitrosocks client"),
    ...(options.events === undefined ? {} : { events: options.events }),
    ...(options.server === undefined
      ? {}
      : { server: { host: options.server.hostname, port: options.server.port } }),
    ...(options.caPem === undefined ? {} : { caPem: options.caPem }),
  });
  try {
    await abortable(client.session(), signal);
  } catch (e) {
    // The client stops in the background (a handshake in flight ends within its deadline).
    client.close().catch(() => {});
    throw e;
  }
  return new ClientTunnelHandle(client, config.user, signal);
}

/** A byte stream that fails at once: attached to a stream nobody wants, it resets it. */
const UNWANTED: ByteStream = {
  read: () => Promise.reject(new Deno.errors.Interrupted("The dial was abandoned")),
  write: () => Promise.reject(new Deno.errors.Interrupted("The dial was abandoned")),
  closeWrite: () => Promise.resolve(),
  close: () => {},
};

class ClientTunnelHandle implements Tunnel {
  readonly user: string;
  readonly #client: ClientTunnel;
  readonly #signal: AbortSignal | undefined;
  #closing: Promise<void> | undefined;

  constructor(client: ClientTunnel, user: string, signal: AbortSignal | undefined) {
    this.#client = client;
    this.user = user;
    this.#signal = signal;
    signal?.addEventListener("abort", this.#onAbort, { once: true });
  }

  get events(): EventHub {
    return this.#client.events;
  }

  get closed(): boolean {
    return this.#closing !== undefined;
  }

  dial(options: DialOptions & { transport: "udp" }): Promise<TunnelDatagramConn>;
  dial(options: DialOptions & { transport?: "tcp" }): Promise<TunnelConn>;
  dial(options: DialOptions): Promise<TunnelConn | TunnelDatagramConn>;
  async dial(options: DialOptions): Promise<TunnelConn | TunnelDatagramConn> {
    const { hostname, port } = options;
    const transport = options.transport ?? "tcp";
    const where = typeof hostname === "string" ? formatHostPort(hostname, port) : String(hostname);
    if (transport !== "tcp" && transport !== "udp") {
      throw new TypeError(`Cannot dial ${where}: transport "${transport}" is not "tcp" or "udp"`);
    }
    const host = typeof hostname === "string" ? classifyHost(hostname) : null;
    if (host === null) {
      throw new TypeError(`Cannot dial ${where}: "${hostname}" is not a host name or IP address`);
    }
    if (!Number.isInteger(port) || port < 1 || port > 65535) {
      throw new RangeError(`Cannot dial ${where}: port ${port} is not in 1-65535`);
    }
    checkTimeout("timeoutMs", options.timeoutMs);
    checkTimeout("writeTimeoutMs", options.writeTimeoutMs);
    if (this.closed) {
      throw new Deno.errors.BadResource(`Cannot dial ${where}: the tunnel is closed`);
    }
    const signal = options.signal;
    signal?.throwIfAborted();
    const timeoutMs = options.timeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
    if (transport === "udp") {
      const dialing = dialDatagram(() => this.#client.session(), { hostname, port }, timeoutMs);
      try {
        return await abortable(dialing, signal);
      } catch (e) {
        // Abandoned: an association that opens after all is closed at once.
        dialing.then((c) => c.close(), () => {});
        throw e;
      }
    }
    const request = encodeRequest({
      command: "connect",
      addressType: host.addressType,
      host: host.host,
      port,
    });
    const session = await abortable(this.#client.session(), signal);
    const opening = session.open(request, timeoutMs);
    let opened: { id: number; reply: Uint8Array };
    try {
      opened = await abortable(opening, signal);
    } catch (e) {
      // Abandoned: a stream the server opens after all is reset at once.
      opening.then(({ id }) => session.attach(id, UNWANTED), () => {});
      throw e;
    }
    let reply;
    try {
      reply = decodeReply(opened.reply);
    } catch (e) {
      session.attach(opened.id, UNWANTED);
      throw e;
    }
    if (reply.reply !== Reply.SUCCEEDED) {
      // The server resets the stream after a refusal.
      throw new Socks5Error(
        reply.reply,
        `Cannot dial ${where}: the server answered "${replyName(reply.reply)}" ` +
          `(SOCKS5 reply ${reply.reply})`,
      );
    }
    const { conn, side } = createConn({
      localAddr: { transport: "tcp", hostname: reply.bind.host, port: reply.bind.port },
      remoteAddr: { transport: "tcp", hostname, port },
      ...(options.writeTimeoutMs === undefined ? {} : { writeTimeoutMs: options.writeTimeoutMs }),
    });
    session.attach(opened.id, side);
    return conn;
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#signal?.removeEventListener("abort", this.#onAbort);
      await this.#client.close();
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #onAbort = (): void => {
    this.close().catch(() => {});
  };
}
