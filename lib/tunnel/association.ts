/**
 * A UDP association through the tunnel, for the client's own UDP services
 * (UDP forwards, the local DNS server, the library's `dial({ transport:
 * "udp" })`): one stream opened with a SOCKS5 UDP ASSOCIATE request, whose
 * DATAGRAM frames carry the datagrams both ways (docs/PROTOCOL.md part 5
 * section 12). The SOCKS5 port's UDP ASSOCIATE (`udp_associate.ts`) sends
 * the same request.
 *
 * @module
 */
import {
  classifyHost,
  decodeReply,
  encodeRequest,
  Reply,
  replyName,
  Socks5Error,
  udpAddressLength,
} from "../socks5/mod.ts";
import type { Session } from "./session.ts";

/** What the client asks the server for: an association; the application's address is not its business. */
export const ASSOCIATE_REQUEST: Uint8Array = encodeRequest({
  command: "udp_associate",
  addressType: "ipv4",
  host: "0.0.0.0",
  port: 0,
});

/**
 * `ATYP ‖ addr ‖ port` for a destination: an IPv4 or IPv6 address, or a
 * name (resolved by the server). Throws `TypeError` for anything else.
 *
 * @example
 * ```ts
 * import { datagramAddress } from "./association.ts";
 * datagramAddress("127.0.0.1", 53); // Uint8Array [1, 127, 0, 0, 1, 0, 53]
 * ```
 */
export function datagramAddress(host: string, port: number): Uint8Array {
  const h = classifyHost(host);
  if (h === null) throw new TypeError(`Cannot send datagrams to "${host}": not a host name or IP`);
  // A CONNECT request is VER CMD RSV, then exactly this address form.
  return encodeRequest({ command: "connect", addressType: h.addressType, host: h.host, port })
    .slice(3);
}

/** What an association does with what arrives. */
export interface AssociationHandlers {
  /**
   * A datagram from the tunnel: its data, and the address it came from
   * (`ATYP ‖ addr ‖ port`); views into the record, valid during the call.
   */
  onDatagram(data: Uint8Array, from: Uint8Array): void;
  /** The association ended (its stream was reset, went idle, or the session ended); once. */
  onClose(reason: string): void;
}

/** An open association. */
export interface Association {
  /** The session and stream carrying it. */
  readonly session: Session;
  readonly id: number;
  /** True once it ended (closed here or by the tunnel). */
  readonly closed: boolean;
  /**
   * Queues `data` for the destination `to` (`ATYP ‖ addr ‖ port`), both
   * held as views until sent: pass bytes nobody reuses. Never waits: false
   * when it was refused (closed, too large); a full queue drops its oldest.
   */
  send(to: Uint8Array, data: Uint8Array): boolean;
  /** Ends the association (its stream is reset); `onClose` hears `reason`. */
  close(reason: string): void;
}

/**
 * Opens an association on the session `session()` gives. Rejects with a
 * `Socks5Error` carrying the server's reply when it refuses, with
 * `Deno.errors.TimedOut` when it does not answer within `timeoutMs`, or
 * with the session's error when there is no tunnel.
 */
export async function openAssociation(
  session: () => Promise<Session>,
  timeoutMs: number,
  handlers: AssociationHandlers,
): Promise<Association> {
  const s = await session();
  const { id, reply } = await s.open(ASSOCIATE_REQUEST, timeoutMs);
  const code = reply[1] ?? Reply.GENERAL_FAILURE;
  if (code !== Reply.SUCCEEDED) {
    throw new Socks5Error(
      code,
      `Cannot open a UDP association: the server answered "${
        replyName(code)
      }" (SOCKS5 reply ${code})`,
    );
  }
  decodeReply(reply); // a malformed reply throws before the stream is used
  let closed = false;
  const end = (reason: string) => {
    if (closed) return;
    closed = true;
    handlers.onClose(reason);
  };
  const bound = s.bindAssociation(id, {
    onDatagram(datagram) {
      const n = udpAddressLength(datagram);
      if (n < 0 || closed) return;
      handlers.onDatagram(datagram.subarray(n), datagram.subarray(0, n));
    },
    onClose: (reason) => end(`stream ended: ${reason}`),
  });
  if (!bound) {
    throw new Deno.errors.ConnectionReset("Cannot open a UDP association: the session ended");
  }
  return {
    session: s,
    id,
    get closed() {
      return closed;
    },
    send: (to, data) => !closed && s.sendDatagram(id, to, data),
    close(reason) {
      if (closed) return;
      s.closeStream(id, reason);
      end(reason);
    },
  };
}
