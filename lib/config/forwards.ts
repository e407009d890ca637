/**
 * The client profile's local services besides the SOCKS5/HTTP port:
 * `forwards:` (fixed local TCP or UDP ports to fixed destinations through
 * the tunnel, like `ssh -L`) and `dns:` (a local DNS server whose queries go
 * through the tunnel to one resolver). Documented in docs/CONFIG.md.
 *
 * @module
 */
import { duration, hostPort, list, object, oneOf, optional, required } from "./_schema.ts";
import type { HostPort } from "../wire/host_port.ts";

/** A forward's protocol. */
export type ForwardProtocol = "tcp" | "udp";

/** One of `forwards:`. */
export interface Forward {
  /** The local address applications send to. */
  listen: HostPort;
  /** The destination, as the server reaches it (a name is resolved there). */
  to: HostPort;
  /** "tcp": a stream per connection; "udp": an association per source. */
  protocol: ForwardProtocol;
  /**
   * Seconds without a byte (TCP) or a datagram (UDP, per source address)
   * after which the connection or the source's association is closed; 0 =
   * never. Default: 60 s for UDP, never for TCP.
   */
  idleTimeoutS: number;
}

/** `dns:`: the local DNS server. */
export interface DnsSettings {
  /** Where it answers, over UDP and TCP. */
  listen: HostPort;
  /** The resolver every query goes to, reached from the server through the tunnel. */
  upstream: HostPort;
}

/** Default `idle_timeout` of a UDP forward (s): a source that sent nothing this long is forgotten. */
export const UDP_FORWARD_IDLE_S = 60;

/** The schema of one `forwards:` item. */
const forwardItem = object({
  listen: required(hostPort(0)),
  to: required(hostPort(1)),
  protocol: optional(oneOf(["tcp", "udp"] as const)),
  idle_timeout: optional(duration(0, 7 * 86400)),
});

/** The `forwards:` field of the client profile. */
export const forwardsSchema = list(forwardItem, { min: 0, max: 256 });

/** The `dns:` section of the client profile. */
export const dnsSchema = object({
  listen: required(hostPort(0)),
  upstream: required(hostPort(1)),
});

type RawForward = ReturnType<typeof forwardItem.parse>;

/** The parsed forwards, defaults filled in. */
export function forwardSettings(raw: readonly RawForward[]): Forward[] {
  return raw.map((f) => {
    const protocol = f.protocol ?? "tcp";
    return {
      listen: f.listen,
      to: f.to,
      protocol,
      idleTimeoutS: f.idle_timeout ?? (protocol === "udp" ? UDP_FORWARD_IDLE_S : 0),
    };
  });
}
