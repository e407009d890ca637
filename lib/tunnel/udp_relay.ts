/**
 * The server's side of a UDP association (docs/PROTOCOL.md part 5 section
 * 12): datagrams from the client leave through the association's own UDP
 * sockets (one per address family, opened on first use, closed after an
 * idle time: a NAT mapping), each destination checked against the user's
 * `udp:` routes and `egress.block` like a TCP stream's (a name resolved by
 * the same egress resolver, every address it gives judged); datagrams back
 * are accepted only from peers the client has sent to (full cone per
 * association) and go to the client as DATAGRAM frames with their source
 * address. The user's `bandwidth` and quota police datagrams both ways.
 *
 * @module
 */
import { decodeUdpAddress, encodeUdpAddress, udpAddressLength } from "../socks5/mod.ts";
import { describeError, type EventSink, type Logger, ThrottledLog } from "../observe/mod.ts";
import { formatHostPort } from "../wire/host_port.ts";
import type { Session } from "./session.ts";
import { DatagramSender } from "./udp_sender.ts";

/** Peers remembered per association for replies; the least recently sent to is forgotten first. */
const MAX_PEERS = 4096;
/** Destinations refused by routes that are reported (once each) per association. */
const MAX_REFUSALS_REPORTED = 16;
/** A resolved name is used this long before it is resolved again (ms). */
const NAME_TTL_MS = 60_000;
/** Names remembered per association. */
const MAX_NAMES = 256;
/** Names being resolved at once per association; datagrams to more are dropped. */
const MAX_NAMES_RESOLVING = 16;
/** Datagrams waiting for one name to resolve; more are dropped. */
const MAX_WAITING_PER_NAME = 16;
/** One receive buffer: the largest UDP payload. */
const RECEIVE_BYTES = 65536;

/**
 * Where a datagram may go: the address to send it to, or the refusal (for
 * the log: which rule or `egress.block` entry refused what); undefined
 * for a name that may be allowed once it is resolved.
 */
export type UdpVerdict =
  | { to: string }
  | { refused: "route" | "egress"; reason: string }
  | undefined;

/**
 * The server's one route and egress check of a datagram's destination
 * `host:port`. An address is judged as itself. A name without `addrs` is
 * refused when no address it could resolve to may be allowed, else
 * undefined (resolve it); with `addrs` (what it resolved to) every address
 * is judged and one allowed is chosen.
 */
export type UdpRouteCheck = (host: string, port: number, addrs?: readonly string[]) => UdpVerdict;

/** Options of a {@linkcode UdpAssociation}. */
export interface UdpAssociationOptions {
  session: Session;
  /** The association's stream. */
  id: number;
  /** The user's route check for UDP destinations. */
  allowed: UdpRouteCheck;
  /**
   * Resolves a destination name to its addresses (the server's egress
   * resolver, as for TCP streams); rejects when it has none.
   */
  resolve: (name: string) => Promise<string[]>;
  /** A socket that moved nothing for this long is closed, and its peers forgotten (ms). */
  idleMs: number;
  events: EventSink;
  log: Logger;
}

/** Counters of one association, reported in its `udp_close` event. */
export interface UdpCounters {
  /** Datagrams sent on to destinations. */
  out: number;
  /** Datagrams from peers sent to the client. */
  in: number;
  /** Payload bytes sent on to destinations. */
  bytesOut: number;
  /** Payload bytes from peers sent to the client. */
  bytesIn: number;
  /** Datagrams to destinations the routes refuse. */
  refused: number;
  /** Datagrams from peers the client never sent to. */
  strangers: number;
  /**
   * Datagrams that could not be sent or queued (bad address, send error,
   * queue), or that the user's `bandwidth` or quota did not admit.
   */
  dropped: number;
}

/** One address family's socket and the peers it has sent to. */
interface Nat {
  conn: Deno.DatagramConn;
  /** Sends on `conn` in order. */
  sender: DatagramSender;
  /** "ip port" of every peer sent to, least recently used first. */
  peers: Map<string, true>;
  lastUse: number;
  timer: ReturnType<typeof setInterval>;
}

/**
 * One association on the server. Made by the stream policy when it accepts
 * a UDP ASSOCIATE OPEN; lives until the stream ends.
 *
 * @example
 * ```ts ignore
 * const a = new UdpAssociation({ session, id, allowed, resolve, idleMs: 60_000, events, log });
 * a.start(); // binds the stream's datagrams to it
 * ```
 */
export class UdpAssociation {
  readonly #o: UdpAssociationOptions;
  readonly counters: UdpCounters = {
    out: 0,
    in: 0,
    bytesOut: 0,
    bytesIn: 0,
    refused: 0,
    strangers: 0,
    dropped: 0,
  };
  #v4: Nat | undefined;
  #v6: Nat | undefined;
  #closed = false;
  readonly #reported = new Set<string>();
  /** Names resolved, oldest first: their addresses (none when the lookup failed) and when. */
  readonly #names = new Map<string, { addrs: readonly string[]; at: number }>();
  /** Names being resolved and the datagrams waiting for them. */
  readonly #resolving = new Map<string, { port: number; data: Uint8Array }[]>();

  /** Lines that would come once per datagram (a socket that cannot open, a send that fails). */
  readonly #throttled: ThrottledLog;

  constructor(options: UdpAssociationOptions) {
    this.#o = options;
    this.#throttled = new ThrottledLog(options.log);
  }

  /** Binds the stream's datagrams here; false when the stream is already gone. */
  start(): boolean {
    return this.#o.session.bindAssociation(this.#o.id, {
      onDatagram: (d) => this.#fromClient(d),
      onClose: (reason) => this.#close(reason),
    });
  }

  /** A DATAGRAM from the client: check the route, send it on. */
  #fromClient(datagram: Uint8Array): void {
    if (this.#closed) return;
    const n = udpAddressLength(datagram);
    const dst = n < 0 ? null : decodeUdpAddress(datagram.subarray(0, n));
    if (dst === null || dst.port === 0) {
      this.counters.dropped++;
      return;
    }
    const verdict = this.#o.allowed(dst.host, dst.port);
    if (verdict !== undefined && "refused" in verdict) {
      this.#refused(dst.host, dst.port, verdict.reason);
      return;
    }
    const data = datagram.subarray(n);
    if (verdict !== undefined) {
      // An address (also one sent as a name): no lookup.
      this.#send(verdict.to, dst.port, data);
      return;
    }
    // A name is resolved here, so that its replies (from an IP) can be matched to it.
    const known = this.#names.get(dst.host);
    if (known !== undefined && Date.now() - known.at < NAME_TTL_MS) {
      this.#sendToName(dst.host, known.addrs, dst.port, data);
      return;
    }
    const waiting = this.#resolving.get(dst.host);
    if (waiting !== undefined) {
      if (waiting.length < MAX_WAITING_PER_NAME) waiting.push({ port: dst.port, data });
      else this.counters.dropped++;
      return;
    }
    if (this.#resolving.size >= MAX_NAMES_RESOLVING) {
      this.counters.dropped++;
      return;
    }
    this.#resolving.set(dst.host, [{ port: dst.port, data }]);
    this.#o.resolve(dst.host).catch(() => [] as string[]).then((addrs) => {
      const queued = this.#resolving.get(dst.host) ?? [];
      this.#resolving.delete(dst.host);
      if (this.#closed) return;
      if (this.#names.size >= MAX_NAMES) this.#names.delete(this.#names.keys().next().value!);
      this.#names.set(dst.host, { addrs, at: Date.now() });
      for (const q of queued) this.#sendToName(dst.host, addrs, q.port, q.data);
    });
  }

  /**
   * Sends a datagram addressed to the name `host` to the address of
   * `addrs` (what it resolved to) that the check chooses among those the
   * rules allow: every address is judged, as a TCP stream's are. Dropped
   * when the name has none, refused when none is allowed.
   */
  #sendToName(host: string, addrs: readonly string[], port: number, data: Uint8Array): void {
    if (addrs.length === 0) {
      this.counters.dropped++;
      return;
    }
    const verdict = this.#o.allowed(host, port, addrs);
    if (verdict === undefined) this.counters.dropped++;
    else if ("refused" in verdict) this.#refused(host, port, verdict.reason);
    else this.#send(verdict.to, port, data);
  }

  /** Counts a refused datagram; the first few refused destinations are reported, with why. */
  #refused(host: string, port: number, reason: string): void {
    this.counters.refused++;
    const target = formatHostPort(host, port);
    if (this.#reported.size < MAX_REFUSALS_REPORTED && !this.#reported.has(target)) {
      this.#reported.add(target);
      this.#o.events.emit({
        type: "udp_refused",
        session: this.#o.session.no,
        stream: this.#o.id,
        target,
        reason,
      });
    }
  }

  /** Sends `data` to `ip:port` from its family's socket, allowing replies from there. */
  #send(ip: string, port: number, data: Uint8Array): void {
    const nat = this.#metered("up", data.length) ? this.#nat(ip.includes(":") ? 6 : 4) : undefined;
    if (nat === undefined) {
      this.counters.dropped++;
      return;
    }
    nat.lastUse = Date.now();
    this.counters.out++;
    this.counters.bytesOut += data.length;
    this.#allowPeer(nat, ip, port);
    const addr: Deno.NetAddr = { transport: "udp", hostname: ip, port };
    if (!nat.sender.send(data, addr)) this.counters.dropped++;
  }

  #allowPeer(nat: Nat, host: string, port: number): void {
    const key = `${host} ${port}`;
    if (nat.peers.has(key)) {
      nat.peers.delete(key);
    } else if (nat.peers.size >= MAX_PEERS) {
      nat.peers.delete(nat.peers.keys().next().value!);
    }
    nat.peers.set(key, true);
  }

  /** The socket for one address family, opened on first use. */
  #nat(family: 4 | 6): Nat | undefined {
    const have = family === 4 ? this.#v4 : this.#v6;
    if (have !== undefined) return have;
    let conn: Deno.DatagramConn;
    try {
      conn = Deno.listenDatagram({
        transport: "udp",
        hostname: family === 4 ? "0.0.0.0" : "::",
        port: 0,
      });
    } catch (e) {
      this.#throttled.debug(
        `socket${family}`,
        `udp ${this.#o.id}: cannot open an IPv${family} socket: ${describeError(e)}`,
      );
      return undefined;
    }
    const idleMs = this.#o.idleMs;
    const nat: Nat = {
      conn,
      sender: new DatagramSender(conn, (e) => {
        this.counters.dropped++;
        this.#throttled.debug("send", `udp ${this.#o.id}: send: ${describeError(e)}`);
      }),
      peers: new Map(),
      lastUse: Date.now(),
      timer: setInterval(() => {
        if (Date.now() - nat.lastUse >= idleMs) this.#closeNat(family);
      }, Math.max(250, Math.min(idleMs / 4, 10_000))),
    };
    if (family === 4) this.#v4 = nat;
    else this.#v6 = nat;
    this.#receive(nat).catch(() => {});
    return nat;
  }

  /** Datagrams from peers: only those the client sent to go back to it. */
  async #receive(nat: Nat): Promise<void> {
    const { session, id } = this.#o;
    // One receive buffer; each datagram is copied out once, behind its address.
    const buf = new Uint8Array(RECEIVE_BYTES);
    for (;;) {
      let got: [Uint8Array, Deno.Addr];
      try {
        got = await nat.conn.receive(buf);
      } catch {
        return; // closed
      }
      if (this.#closed) return;
      const [data, from] = got;
      const peer = from as Deno.NetAddr;
      const host = unmapIpv4(peer.hostname);
      if (!nat.peers.has(`${host} ${peer.port}`)) {
        this.counters.strangers++;
        continue;
      }
      nat.lastUse = Date.now();
      if (!this.#metered("down", data.length)) {
        this.counters.dropped++;
        continue;
      }
      const address = encodeUdpAddress(host, peer.port);
      const frame = new Uint8Array(address.length + data.length);
      frame.set(address);
      frame.set(data, address.length);
      // The session holds views until its writer pulls them: the copy, not `buf`.
      const sent = session.sendDatagram(
        id,
        frame.subarray(0, address.length),
        frame.subarray(address.length),
      );
      if (sent) {
        this.counters.in++;
        this.counters.bytesIn += data.length;
      } else {
        this.counters.dropped++;
      }
    }
  }

  /**
   * Whether the user's limits admit a datagram of `n` bytes going `way`
   * (`up`: to a destination, `down`: back to the client): the quota budget
   * (spent bytes are counted; none left: dropped, and a check is asked for)
   * and the bandwidth bucket, which a datagram cannot wait for (`admit` in
   * lib/tunnel/pace.ts).
   */
  #metered(way: "up" | "down", n: number): boolean {
    const m = this.#o.session.meter;
    if (m === undefined) return true;
    const b = m.budget;
    if (b !== undefined && b.left <= 0) {
      b.spent();
      return false;
    }
    const bucket = m[way];
    if (bucket !== undefined && !bucket.admit(n, performance.now())) return false;
    if (b !== undefined && (b.left -= n) <= 0) b.spent();
    return true;
  }

  #closeNat(family: 4 | 6): void {
    const nat = family === 4 ? this.#v4 : this.#v6;
    if (nat === undefined) return;
    if (family === 4) this.#v4 = undefined;
    else this.#v6 = undefined;
    clearInterval(nat.timer);
    try {
      nat.conn.close();
    } catch {
      // already closed
    }
  }

  #close(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeNat(4);
    this.#closeNat(6);
    this.#o.events.emit({
      type: "udp_close",
      session: this.#o.session.no,
      stream: this.#o.id,
      side: "server",
      ...this.counters,
      reason,
    });
  }
}

/** `::ffff:a.b.c.d` (a dual-stack socket's view of an IPv4 peer) as `a.b.c.d`. */
function unmapIpv4(host: string): string {
  return host.startsWith("::ffff:") && host.includes(".") ? host.slice(7) : host;
}
