/**
 * The client's local DNS server (`dns:`): applications that use the
 * system resolver point it here, and every query goes through the tunnel
 * to one resolver (`dns.upstream`), reached from the server, so nothing
 * about the names they look up leaves the machine outside the tunnel.
 *
 * - UDP: every query rides one UDP association shared by all applications
 *   (opened on the first query, opened again after it ends). The query's
 *   16-bit ID is replaced by a fresh random one that no pending query
 *   holds, and restored in the answer, which goes back to the address and
 *   port that asked: two applications that picked the same ID still get
 *   their own answers, and an answer nobody waits for (late, or never
 *   asked) is dropped. At most {@linkcode DNS_PENDING_MAX} queries wait at
 *   once, each for at most {@linkcode DNS_QUERY_TIMEOUT_MS}.
 *   This shared association is the UDP side's only tunnel stream, however
 *   many applications ask: a flood of queries cannot take the streams
 *   other applications need.
 * - TCP: each connection is one tunnel stream to the upstream (a TCP
 *   forward), on the same port number as UDP. A connection that moves no
 *   byte for `dns.idle_timeout` (default 10 s) is closed and its stream
 *   reset, so an idle client does not hold a stream until the upstream
 *   gives up on it.
 *
 * @module
 */
import type { DnsSettings } from "../config/mod.ts";
import { describeError, ThrottledLog } from "../observe/mod.ts";
import { formatHostPort } from "../wire/host_port.ts";
import { type Association, datagramAddress, openAssociation } from "./association.ts";
import {
  bindOrExplain,
  type ForwardContext,
  receiveDatagrams,
  startTcpForward,
  UDP_RETRY_MS,
} from "./forwards.ts";
import type { FrontEnd } from "./listener.ts";
import { DatagramSender } from "./udp_sender.ts";

/** Queries waiting for their answer at once; more are dropped (the application retries). */
export const DNS_PENDING_MAX = 4096;
/** A query not answered within this is forgotten (ms); resolvers give up sooner. */
export const DNS_QUERY_TIMEOUT_MS = 10_000;
/** The DNS header (RFC 1035 section 4.1.1): a shorter datagram is not a message. */
const DNS_HEADER_BYTES = 12;
/** Binding UDP and TCP to the same port number when `listen` asks for any port. */
const BIND_ATTEMPTS = 8;

/** Counters of the local DNS server. */
export interface DnsCounters {
  /** UDP queries sent into the tunnel. */
  queries: number;
  /** UDP answers delivered to the application that asked. */
  answers: number;
  /** Queries dropped: no association, too many pending, malformed. */
  dropped: number;
  /** Answers that matched no pending query (late or unasked). */
  unmatched: number;
}

/** A running local DNS server. */
export interface DnsServer extends FrontEnd {
  readonly counters: Readonly<DnsCounters>;
}

/** One query waiting for its answer. */
interface Pending {
  to: Deno.NetAddr;
  /** The application's ID, restored in the answer. */
  id: number;
  at: number;
}

/**
 * Starts the DNS server on `settings.listen` (UDP and TCP, one port
 * number), asking `settings.upstream` through the tunnel.
 *
 * @example
 * ```ts ignore
 * const dns = startDnsServer(profile.dns, context);
 * await dns.close();
 * ```
 */
export function startDnsServer(settings: DnsSettings, context: ForwardContext): DnsServer {
  const { listen, upstream } = settings;
  const to = formatHostPort(upstream.host, upstream.port);
  const log = context.log.child("dns");
  const throttled = new ThrottledLog(log);
  const { sock, tcp } = bindBoth(settings, context);
  const local = sock.addr as Deno.NetAddr;
  const sender = new DatagramSender(sock, () => counters.dropped++);
  for (const protocol of ["udp", "tcp"] as const) {
    context.events.emit({
      type: "listening",
      kind: "dns",
      addr: { hostname: local.hostname, port: local.port },
      protocol,
      to,
    });
  }
  const address = datagramAddress(upstream.host, upstream.port);
  const counters: DnsCounters = { queries: 0, answers: 0, dropped: 0, unmatched: 0 };
  const pending = new Map<number, Pending>();
  let association: Association | undefined;
  let opening: Promise<Association | undefined> | undefined;
  let retryAt = 0;
  let stopped = false;

  const onAnswer = (data: Uint8Array) => {
    if (data.length < DNS_HEADER_BYTES) {
      counters.unmatched++;
      return;
    }
    const id = (data[0]! << 8) | data[1]!;
    const p = pending.get(id);
    if (p === undefined) {
      counters.unmatched++;
      return;
    }
    pending.delete(id);
    const answer = data.slice();
    answer[0] = p.id >> 8;
    answer[1] = p.id & 0xff;
    counters.answers++;
    if (!sender.send(answer, p.to)) counters.dropped++;
  };

  /** The shared association: open, opening, or undefined while it cannot open. */
  const current = (): Promise<Association | undefined> => {
    if (association !== undefined && !association.closed) return Promise.resolve(association);
    if (opening !== undefined) return opening;
    if (performance.now() < retryAt) return Promise.resolve(undefined);
    opening = openAssociation(() => context.session(), context.openTimeoutMs, {
      onDatagram: onAnswer,
      onClose: (reason) => log.debug(`association to ${to} ended (${reason})`),
    }).then((a) => {
      if (stopped) {
        a.close("DNS server closed");
        return undefined;
      }
      association = a;
      return a;
    }, (e) => {
      retryAt = performance.now() + UDP_RETRY_MS;
      throttled.warn(
        "open",
        `queries to ${to} dropped: cannot open a UDP association: ${describeError(e)}`,
      );
      return undefined;
    }).finally(() => (opening = undefined));
    return opening;
  };

  /** Queries waiting for the association to open: they count against the bound too. */
  let waiting = 0;
  const query = async (packet: Uint8Array, from: Deno.NetAddr) => {
    if (pending.size + waiting >= DNS_PENDING_MAX) {
      counters.dropped++;
      throttled.warn("full", `query dropped: ${DNS_PENDING_MAX} queries pending`);
      return;
    }
    waiting++;
    const a = await current().finally(() => waiting--);
    if (a === undefined) {
      counters.dropped++;
      return;
    }
    const id = freshId(pending);
    pending.set(id, { to: from, id: (packet[0]! << 8) | packet[1]!, at: performance.now() });
    packet[0] = id >> 8;
    packet[1] = id & 0xff;
    if (a.send(address, packet)) counters.queries++;
    else {
      pending.delete(id);
      counters.dropped++;
    }
  };

  const sweep = setInterval(() => {
    const old = performance.now() - DNS_QUERY_TIMEOUT_MS;
    for (const [id, p] of pending) if (p.at < old) pending.delete(id);
  }, 1_000);

  const done = receiveDatagrams(sock, (packet, from) => {
    if (packet.length < DNS_HEADER_BYTES) counters.dropped++;
    else query(packet, from);
  }, (e) => {
    if (!stopped) log.warn(`receive failed: ${describeError(e)}`);
  });

  return {
    addr: { hostname: local.hostname, port: local.port },
    counters,
    done: Promise.all([done, tcp.done]).then(() => {}),
    async close() {
      stopped = true;
      clearInterval(sweep);
      association?.close("DNS server closed");
      try {
        sock.close();
      } catch {
        // already closed
      }
      await Promise.all([done, tcp.close()]);
    },
  };

  /** UDP first, then TCP on the port number UDP got (again, if another program has it). */
  function bindBoth(s: DnsSettings, c: ForwardContext): { sock: Deno.DatagramConn; tcp: FrontEnd } {
    for (let attempt = 1;; attempt++) {
      const udp = bindOrExplain(
        `DNS (UDP)`,
        listen,
        () => Deno.listenDatagram({ transport: "udp", hostname: listen.host, port: listen.port }),
      );
      const port = (udp.addr as Deno.NetAddr).port;
      try {
        const front = startTcpForward(
          {
            listen: { host: listen.host, port },
            to: s.upstream,
            protocol: "tcp",
            idleTimeoutS: s.idleTimeoutS,
            maxSources: 0,
          },
          { ...c, log: c.log.child("dns") },
        );
        return { sock: udp, tcp: front };
      } catch (e) {
        udp.close();
        if (listen.port !== 0 || attempt >= BIND_ATTEMPTS) {
          throw e instanceof Deno.errors.AddrInUse
            ? new Deno.errors.AddrInUse(
              `Cannot listen for DNS (TCP) on ${formatHostPort(listen.host, port)}: the address ` +
                `is in use (pick another port for dns.listen, or stop what holds it)`,
            )
            : e;
        }
      }
    }
  }
}

/** A random query ID that no pending query holds. */
function freshId(pending: Map<number, Pending>): number {
  const r = new Uint16Array(1);
  for (;;) {
    crypto.getRandomValues(r);
    if (!pending.has(r[0]!)) return r[0]!;
  }
}
