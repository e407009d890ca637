/**
 * The client's `forwards:` (like `ssh -L`): a fixed local port whose
 * traffic goes through the tunnel to a fixed destination.
 *
 * - TCP: each accepted connection is one tunnel stream to `to` (the same
 *   OPEN as a SOCKS5 CONNECT, so routes and fast open apply).
 * - UDP: each source address (IP and port) gets a UDP association of its
 *   own, so replies go back to the source that asked, exactly as a NAT
 *   would; an association idle for `idle_timeout` is closed. At most
 *   `max_sources` sources hold one at once (each is a tunnel stream, and
 *   the session's streams are shared with every other application): a new
 *   source past it takes the place of the source idle longest, whose
 *   association is closed (counted, logged at most once per 5 s); when
 *   every place is still opening, the datagram is dropped. While one
 *   opens, up to {@linkcode UDP_PENDING_MAX} datagrams wait; when it cannot
 *   open, the source's datagrams are dropped (counted) for
 *   {@linkcode UDP_RETRY_MS} before the next try, and the log says so at
 *   most once per 5 s.
 *
 * @module
 */
import type { Forward } from "../config/mod.ts";
import { classifyHost, encodeRequest, Reply, type Socks5Request } from "../socks5/mod.ts";
import { describeError, type EventSink, type Logger, ThrottledLog } from "../observe/mod.ts";
import type { ByteStream } from "../transport/types.ts";
import { formatHostPort } from "../wire/host_port.ts";
import { type Association, datagramAddress, openAssociation } from "./association.ts";
import { type Connector, openFor } from "./dial.ts";
import { type FrontEnd, serveListener } from "./listener.ts";
import type { Session } from "./session.ts";
import { DatagramSender } from "./udp_sender.ts";

/** Datagrams of one source held while its association opens. */
export const UDP_PENDING_MAX = 64;
/** After an association failed to open, its source's datagrams are dropped this long (ms). */
export const UDP_RETRY_MS = 1_000;
/** One receive buffer: the largest UDP payload. */
const RECEIVE_BYTES = 65536;
const EMPTY = new Uint8Array(0);

/** Counters of a UDP forward. */
export interface UdpForwardCounters {
  /** Sources holding a place now (an association open or opening, or waiting to retry). */
  sources: number;
  /** Most sources held at once so far. */
  peakSources: number;
  /** Sources whose association was closed to make room for a new source. */
  evicted: number;
  /** Datagrams from new sources dropped because every place was still opening. */
  refused: number;
}

/** A running forward; a UDP one has counters. */
export interface ForwardFront extends FrontEnd {
  readonly counters?: Readonly<UdpForwardCounters>;
}

/** What a forward needs from the client. */
export interface ForwardContext {
  /** TCP: opens streams (the SOCKS5 port's connector). */
  connector: Connector;
  /** UDP: the current session, opened if needed. */
  session(): Promise<Session>;
  /** How long an OPEN may wait for the server (ms). */
  openTimeoutMs: number;
  log: Logger;
  events: EventSink;
}

/**
 * Starts one forward: listening at once (a busy port throws
 * `Deno.errors.AddrInUse` naming it), serving until `close()`.
 *
 * @example
 * ```ts ignore
 * const front = startForward({ listen, to, protocol: "tcp", idleTimeoutS: 0, maxSources: 0 }, context);
 * await front.close();
 * ```
 */
export function startForward(forward: Forward, context: ForwardContext): ForwardFront {
  const front = forward.protocol === "tcp"
    ? startTcpForward(forward, context)
    : udpForward(forward, context);
  context.events.emit({
    type: "listening",
    kind: "forward",
    addr: front.addr,
    protocol: forward.protocol,
    to: formatHostPort(forward.to.host, forward.to.port),
  });
  return front;
}

/**
 * Binds a listener; when it cannot, the error names the address and what
 * to do: a port in use, a port below 1024 the system keeps for root, or a
 * Deno without `--allow-net`.
 */
export function bindOrExplain<T>(
  what: string,
  at: { host: string; port: number },
  bind: () => T,
): T {
  try {
    return bind();
  } catch (e) {
    const where = `Cannot listen for ${what} on ${formatHostPort(at.host, at.port)}`;
    if (e instanceof Deno.errors.AddrInUse) {
      throw new Deno.errors.AddrInUse(
        `${where}: the address is in use (pick another port in the profile, or stop what holds it)`,
      );
    }
    if (e instanceof Deno.errors.NotCapable) {
      throw new Deno.errors.NotCapable(`${where}: Deno was not given --allow-net`);
    }
    if (e instanceof Deno.errors.PermissionDenied && at.port > 0 && at.port < 1024) {
      throw new Deno.errors.PermissionDenied(
        `${where}: ports below 1024 need root (or CAP_NET_BIND_SERVICE); pick a port from 1024 up`,
      );
    }
    throw e;
  }
}

/** The CONNECT request for a forward's destination. */
export function connectRequest(to: { host: string; port: number }): Socks5Request {
  const h = classifyHost(to.host);
  if (h === null) throw new TypeError(`Cannot forward to "${to.host}": not a host name or IP`);
  return { command: "connect", addressType: h.addressType, host: h.host, port: to.port };
}

/**
 * Receives on `sock` until it closes, handing each datagram to `handle` as
 * a copy of its own (the session keeps views until its writer pulls them);
 * a failure other than the close goes to `failed`.
 */
export async function receiveDatagrams(
  sock: Deno.DatagramConn,
  handle: (data: Uint8Array, from: Deno.NetAddr) => void,
  failed: (e: unknown) => void,
): Promise<void> {
  const buf = new Uint8Array(RECEIVE_BYTES);
  for (;;) {
    let got: [Uint8Array, Deno.Addr];
    try {
      got = await sock.receive(buf);
    } catch (e) {
      failed(e);
      return;
    }
    handle(got[0].slice(), got[1] as Deno.NetAddr);
  }
}

/** A TCP forward (also the DNS server's TCP side), without its `listening` event. */
export function startTcpForward(forward: Forward, context: ForwardContext): FrontEnd {
  const { listen, to } = forward;
  const where = formatHostPort(to.host, to.port);
  const log = context.log.child(`forward ${formatHostPort(listen.host, listen.port)}`);
  const request = connectRequest(to);
  const raw = encodeRequest(request);
  const idleMs = forward.idleTimeoutS * 1000;
  const listener = bindOrExplain(
    `forward to ${where}`,
    listen,
    () => Deno.listen({ hostname: listen.host, port: listen.port }),
  );
  return serveListener(
    listener,
    async (conn) => {
      const opened = await openFor(context.connector, request, raw, log);
      if (opened.reply[1] !== Reply.SUCCEEDED || opened.attach === undefined) {
        conn.close();
        return;
      }
      opened.attach(idleMs > 0 ? closedWhenIdle(conn, idleMs, log) : conn, EMPTY);
    },
    log,
    "forward",
  );
}

/**
 * `conn` as a byte stream that closes itself after `ms` without a byte
 * either way (the tunnel stream is then reset).
 */
function closedWhenIdle(conn: Deno.Conn, ms: number, log: Logger): ByteStream {
  let last = performance.now();
  let closed = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const close = () => {
    if (closed) return;
    closed = true;
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // already closed
    }
  };
  const check = () => {
    const idle = performance.now() - last;
    if (idle < ms) {
      timer = setTimeout(check, ms - idle);
      return;
    }
    log.debug(`connection idle for ${ms / 1000} s: closed`);
    close();
  };
  timer = setTimeout(check, ms);
  return {
    async read(p) {
      const n = await conn.read(p);
      last = performance.now();
      return n;
    },
    async write(p) {
      const n = await conn.write(p);
      last = performance.now();
      return n;
    },
    closeWrite: () => conn.closeWrite(),
    close,
  };
}

/** One source of a UDP forward. */
interface Flow {
  /** Opening (datagrams wait in `pending`), open, or failed until `retryAt`. */
  state: "opening" | "open" | "failed";
  pending: Uint8Array[];
  association?: Association;
  last: number;
  retryAt: number;
  out: number;
  in: number;
  bytesOut: number;
  bytesIn: number;
  dropped: number;
}

function udpForward(forward: Forward, context: ForwardContext): ForwardFront {
  const { listen, to } = forward;
  const target = formatHostPort(to.host, to.port);
  const log = context.log.child(`forward ${formatHostPort(listen.host, listen.port)}`);
  const throttled = new ThrottledLog(log);
  const address = datagramAddress(to.host, to.port);
  const idleMs = forward.idleTimeoutS * 1000;
  const sock = bindOrExplain(
    `UDP forward to ${target}`,
    listen,
    () => Deno.listenDatagram({ transport: "udp", hostname: listen.host, port: listen.port }),
  );
  const local = sock.addr as Deno.NetAddr;
  const sender = new DatagramSender(sock, (e) => log.debug(`send failed: ${describeError(e)}`));
  const flows = new Map<string, Flow>();
  const counters: UdpForwardCounters = {
    get sources() {
      return flows.size;
    },
    peakSources: 0,
    evicted: 0,
    refused: 0,
  };
  const max = forward.maxSources;
  let stopped = false;

  /** Makes room for one more source: false when every place is still opening. */
  const makeRoom = (newcomer: string): boolean => {
    let oldest: [string, Flow] | undefined;
    for (const entry of flows) {
      if (
        entry[1].state !== "opening" && (oldest === undefined || entry[1].last < oldest[1].last)
      ) {
        oldest = entry;
      }
    }
    if (oldest === undefined) {
      counters.refused++;
      throttled.warn(
        "full",
        `datagram from ${newcomer} dropped: all ${max} sources (max_sources) are opening`,
      );
      return false;
    }
    counters.evicted++;
    throttled.warn(
      "evict",
      `${max} sources (max_sources) reached: the source idle longest gives up its association ` +
        `(${counters.evicted} so far)`,
    );
    if (oldest[1].state === "failed") flows.delete(oldest[0]);
    else endFlow(oldest[0], oldest[1], `evicted: ${max} sources (max_sources) reached`);
    return true;
  };

  const endFlow = (key: string, flow: Flow, reason: string) => {
    if (flows.get(key) !== flow) return;
    flows.delete(key);
    const a = flow.association;
    if (a === undefined) return;
    a.close(reason);
    context.events.emit({
      type: "udp_close",
      session: a.session.no,
      stream: a.id,
      side: "client",
      out: flow.out,
      in: flow.in,
      bytesOut: flow.bytesOut,
      bytesIn: flow.bytesIn,
      strangers: 0,
      dropped: flow.dropped,
      reason,
    });
  };

  const open = (key: string, flow: Flow, source: Deno.NetAddr) => {
    openAssociation(() => context.session(), context.openTimeoutMs, {
      onDatagram(data) {
        if (flows.get(key) !== flow) return;
        flow.last = performance.now();
        flow.in++;
        flow.bytesIn += data.length;
        if (!sender.send(data, source)) flow.dropped++;
      },
      onClose: (reason) => endFlow(key, flow, reason),
    }).then((a) => {
      if (stopped || flows.get(key) !== flow) {
        a.close("forward closed");
        return;
      }
      flow.association = a;
      flow.state = "open";
      context.events.emit({
        type: "udp_open",
        session: a.session.no,
        stream: a.id,
        side: "client",
        relay: formatHostPort(local.hostname, local.port),
      });
      for (const d of flow.pending.splice(0)) send(flow, d);
    }, (e) => {
      if (flows.get(key) !== flow) return;
      flow.state = "failed";
      flow.retryAt = performance.now() + UDP_RETRY_MS;
      flow.dropped += flow.pending.length;
      flow.pending.length = 0;
      throttled.warn(
        "open",
        `datagrams to ${target} dropped: cannot open a UDP association: ${describeError(e)}`,
      );
    });
  };

  const send = (flow: Flow, data: Uint8Array) => {
    if (flow.association!.send(address, data)) {
      flow.out++;
      flow.bytesOut += data.length;
    } else {
      flow.dropped++;
    }
  };

  // Idle associations close; sources that failed are forgotten once they may retry.
  const sweep = setInterval(() => {
    const now = performance.now();
    for (const [key, flow] of flows) {
      if (flow.state === "open" && idleMs > 0 && now - flow.last >= idleMs) {
        endFlow(key, flow, `idle for ${forward.idleTimeoutS} s`);
      } else if (flow.state === "failed" && now >= flow.retryAt) {
        flows.delete(key);
      }
    }
  }, idleMs > 0 ? Math.min(Math.max(idleMs / 4, 50), 5_000) : 5_000);

  const done = receiveDatagrams(sock, (data, source) => {
    const key = formatHostPort(source.hostname, source.port);
    const now = performance.now();
    let flow = flows.get(key);
    if (flow !== undefined && flow.state === "failed" && now >= flow.retryAt) {
      flows.delete(key);
      flow = undefined;
    }
    if (flow === undefined) {
      if (flows.size >= max && !makeRoom(key)) return;
      flow = {
        state: "opening",
        pending: [],
        last: now,
        retryAt: 0,
        out: 0,
        in: 0,
        bytesOut: 0,
        bytesIn: 0,
        dropped: 0,
      };
      flows.set(key, flow);
      if (flows.size > counters.peakSources) counters.peakSources = flows.size;
      open(key, flow, source);
    }
    flow.last = now;
    if (flow.state === "open") send(flow, data);
    else if (flow.state === "opening" && flow.pending.length < UDP_PENDING_MAX) {
      flow.pending.push(data);
    } else flow.dropped++;
  }, (e) => {
    if (!stopped) log.warn(`receive failed: ${describeError(e)}`);
  });

  return {
    addr: { hostname: local.hostname, port: local.port },
    counters,
    done,
    async close() {
      stopped = true;
      clearInterval(sweep);
      for (const [key, flow] of flows) endFlow(key, flow, "forward closed");
      try {
        sock.close();
      } catch {
        // already closed
      }
      await done;
    },
  };
}
