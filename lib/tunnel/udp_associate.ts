/**
 * The client's SOCKS5 UDP ASSOCIATE (RFC 1928 section 7): a UDP relay
 * socket per association on the address the application reached the SOCKS5
 * port on, joined to one tunnel stream whose DATAGRAM frames carry the
 * datagrams (docs/PROTOCOL.md part 5 section 12). The association lives as
 * long as its TCP control connection: when the application closes that, or
 * the stream ends, both go.
 *
 * Accepted: datagrams from the application's address only (the IP of the
 * control connection, or DST.ADDR/DST.PORT of the request when not zero;
 * the first datagram fixes the port when the request left it 0), whole
 * (FRAG = 0; fragments are dropped and counted), to IPv4, IPv6 or domain
 * destinations, any number of them.
 *
 * @module
 */
import {
  decodeUdpPacket,
  encodeReply,
  Reply,
  type Socks5Request,
  UDP_HEADER_PREFIX,
  udpAddressLength,
} from "../socks5/mod.ts";
import { describeError, type EventSink, type Logger, type ThrottledLog } from "../observe/mod.ts";
import { writeAll } from "../transport/types.ts";
import { formatHostPort } from "../wire/host_port.ts";
import type { Session } from "./session.ts";
import { ASSOCIATE_REQUEST } from "./association.ts";
import { DatagramSender } from "./udp_sender.ts";

/** One receive buffer: the largest UDP payload. */
const RECEIVE_BYTES = 65536;

/** Options of {@linkcode runAssociation}. */
export interface AssociationOptions {
  /** Opens the association's stream: the session and the server's raw reply. */
  open(request: Uint8Array): Promise<{ session: Session; id: number; reply: Uint8Array }>;
  events: EventSink;
  log: Logger;
  /**
   * For the lines an application that asks again and again would repeat
   * (no tunnel, no UDP sockets): shared by the client's associations.
   */
  throttled: ThrottledLog;
}

/** Counters of one association on the client. */
interface ClientCounters {
  out: number;
  in: number;
  bytesOut: number;
  bytesIn: number;
  strangers: number;
  fragments: number;
  dropped: number;
}

function isUnspecified(host: string): boolean {
  return host === "0.0.0.0" || host === "::";
}

/** `::ffff:a.b.c.d` as `a.b.c.d`, so a dual-stack view compares equal. */
function unmapIpv4(host: string): string {
  return host.startsWith("::ffff:") && host.includes(".") ? host.slice(7) : host;
}

/**
 * Runs one UDP ASSOCIATE for the SOCKS5 control connection `control`,
 * after the handshake asked for it with `request`: opens the tunnel stream,
 * binds the relay socket, answers with its address, relays until the
 * control connection or the stream ends. Never throws; failures are
 * answered with a SOCKS5 error reply.
 */
export async function runAssociation(
  control: Deno.Conn,
  request: Socks5Request,
  options: AssociationOptions,
): Promise<void> {
  const { log, events } = options;
  const local = control.localAddr as Deno.NetAddr;
  const remote = control.remoteAddr as Deno.NetAddr;
  let relay: Deno.DatagramConn;
  if (typeof Deno.listenDatagram !== "function") {
    options.throttled.warn(
      "unstable",
      "UDP ASSOCIATE refused: UDP sockets need Deno's --unstable-net flag (deno.json and the compiled binaries set it)",
    );
    await writeAll(control, encodeReply(Reply.COMMAND_NOT_SUPPORTED)).catch(() => {});
    control.close();
    return;
  }
  try {
    relay = Deno.listenDatagram({ transport: "udp", hostname: local.hostname, port: 0 });
  } catch (e) {
    options.throttled.warn(
      "socket",
      `UDP ASSOCIATE: cannot open a UDP socket on ${local.hostname}: ${describeError(e)}`,
    );
    await writeAll(control, encodeReply(Reply.GENERAL_FAILURE)).catch(() => {});
    control.close();
    return;
  }
  let opened: { session: Session; id: number; reply: Uint8Array };
  try {
    opened = await options.open(ASSOCIATE_REQUEST);
  } catch (e) {
    options.throttled.info("open", `UDP ASSOCIATE: ${describeError(e)}`);
    relay.close();
    await writeAll(control, encodeReply(Reply.GENERAL_FAILURE)).catch(() => {});
    control.close();
    return;
  }
  const { session, id, reply } = opened;
  if (reply[1] !== Reply.SUCCEEDED) {
    relay.close();
    await writeAll(control, reply).catch(() => {});
    control.close();
    return;
  }
  // Only the application that asked: its IP (DST.ADDR when given), its port when given.
  const appHost = isUnspecified(request.host) || request.addressType === "domain"
    ? unmapIpv4(remote.hostname)
    : unmapIpv4(request.host);
  let appPort = request.port;
  const counters: ClientCounters = {
    out: 0,
    in: 0,
    bytesOut: 0,
    bytesIn: 0,
    strangers: 0,
    fragments: 0,
    dropped: 0,
  };
  let closed = false;
  const close = (reason: string) => {
    if (closed) return;
    closed = true;
    try {
      relay.close();
    } catch {
      // already closed
    }
    try {
      control.close();
    } catch {
      // already closed
    }
    session.closeStream(id, "association closed");
    events.emit({
      type: "udp_close",
      session: session.no,
      stream: id,
      side: "client",
      ...counters,
      reason,
    });
  };
  const sender = new DatagramSender(relay, () => counters.dropped++);
  const bound = session.bindAssociation(id, {
    onDatagram(datagram) {
      if (closed || appPort === 0) {
        counters.dropped++;
        return;
      }
      // The 3 bytes before the datagram held its frame length: RSV RSV FRAG goes there.
      const packet = new Uint8Array(
        datagram.buffer,
        datagram.byteOffset - UDP_HEADER_PREFIX,
        datagram.length + UDP_HEADER_PREFIX,
      );
      packet[0] = packet[1] = packet[2] = 0;
      counters.in++;
      counters.bytesIn += datagram.length - udpAddressLength(datagram);
      if (!sender.send(packet, { transport: "udp", hostname: appHost, port: appPort })) {
        counters.dropped++;
      }
    },
    onClose: (reason) => close(`stream ended: ${reason}`),
  });
  if (!bound) {
    relay.close();
    control.close();
    return;
  }
  const relayAddr = relay.addr as Deno.NetAddr;
  try {
    await writeAll(
      control,
      encodeReply(Reply.SUCCEEDED, { host: relayAddr.hostname, port: relayAddr.port }),
    );
  } catch {
    close("control connection lost");
    return;
  }
  events.emit({
    type: "udp_open",
    session: session.no,
    stream: id,
    side: "client",
    relay: formatHostPort(relayAddr.hostname, relayAddr.port),
  });
  // The control connection: the association ends when it does (RFC 1928 section 7).
  (async () => {
    const buf = new Uint8Array(512);
    try {
      while ((await control.read(buf)) !== null) {
        // Nothing is expected on it; whatever comes is ignored.
      }
    } catch {
      // reset: the same as closed
    }
    close("control connection closed");
  })();
  const buf = new Uint8Array(RECEIVE_BYTES);
  for (;;) {
    let got: [Uint8Array, Deno.Addr];
    try {
      got = await relay.receive(buf);
    } catch (e) {
      if (!closed) {
        log.debug(`UDP relay ${id}: ${describeError(e)}`);
        close("relay socket failed");
      }
      return;
    }
    const [packet, from] = got;
    const src = from as Deno.NetAddr;
    if (unmapIpv4(src.hostname) !== appHost || (appPort !== 0 && src.port !== appPort)) {
      counters.strangers++;
      continue;
    }
    const p = decodeUdpPacket(packet);
    if (p === null) {
      counters.dropped++;
      continue;
    }
    if (p.frag !== 0) {
      counters.fragments++;
      continue;
    }
    appPort = src.port;
    // The session keeps views until its writer pulls them: a copy of this packet, not `buf`.
    const own = packet.slice(UDP_HEADER_PREFIX);
    const alen = p.address.length;
    if (session.sendDatagram(id, own.subarray(0, alen), own.subarray(alen))) {
      counters.out++;
      counters.bytesOut += p.data.length;
    } else {
      counters.dropped++;
    }
  }
}
