/**
 * The client profile's local services besides the SOCKS5/HTTP port:
 * `forwards:` (fixed local TCP or UDP ports to fixed destinations through
 * the tunnel, like `ssh -L`) and `dns:` (a local DNS server whose queries go
 * through the tunnel to one resolver). Documented in docs/CONFIG.md.
 *
 * @module
 */
import type { YamlNode } from "./_yaml.ts";
import {
  configError,
  duration,
  hostPort,
  integer,
  list,
  locate,
  object,
  oneOf,
  optional,
  required,
} from "./_schema.ts";
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
  /**
   * UDP: sources holding an association (a tunnel stream each) at once;
   * a new source past it takes the association of the source idle longest.
   * Default: {@linkcode UDP_FORWARD_SOURCES}, at most a quarter of
   * `limits.max_streams`. TCP: 0 (not used).
   */
  maxSources: number;
}

/** `dns:`: the local DNS server. */
export interface DnsSettings {
  /** Where it answers, over UDP and TCP. */
  listen: HostPort;
  /** The resolver every query goes to, reached from the server through the tunnel. */
  upstream: HostPort;
  /** Seconds a TCP connection may move no byte before it is closed (`dns.idle_timeout`). */
  idleTimeoutS: number;
}

/** Default `idle_timeout` of a UDP forward (s): a source that sent nothing this long is forgotten. */
export const UDP_FORWARD_IDLE_S = 60;
/** Default `max_sources` of a UDP forward (when `limits.max_streams` is at least four times it). */
export const UDP_FORWARD_SOURCES = 256;
/** Default `dns.idle_timeout` (s): an idle TCP DNS connection is closed after this. */
export const DNS_TCP_IDLE_S = 10;

/** The schema of one `forwards:` item. */
const forwardItem = object({
  listen: required(hostPort(0)),
  to: required(hostPort(1)),
  protocol: optional(oneOf(["tcp", "udp"] as const)),
  idle_timeout: optional(duration(0, 7 * 86400)),
  max_sources: optional(integer(1, 1_000_000)),
});

/** The `forwards:` field of the client profile. */
export const forwardsSchema = list(forwardItem, { min: 0, max: 256 });

/** The `dns:` section of the client profile. */
export const dnsSchema = object({
  listen: required(hostPort(0)),
  upstream: required(hostPort(1)),
  idle_timeout: optional(duration(1, 86400)),
});

type RawForward = ReturnType<typeof forwardItem.parse>;
type RawDns = ReturnType<typeof dnsSchema.parse>;

/** Where the profile came from, and the stream limit forwards share. */
export interface ForwardsContext {
  file: string;
  root: YamlNode;
  /** `limits.max_streams`. */
  maxStreams: number;
}

/**
 * The parsed forwards, defaults filled in. Throws `ConfigError` for
 * `max_sources` on a TCP forward, or one that leaves no stream for other
 * applications (not below `limits.max_streams`).
 */
export function forwardSettings(raw: readonly RawForward[], ctx: ForwardsContext): Forward[] {
  return raw.map((f, i) => {
    const protocol = f.protocol ?? "tcp";
    const at = { file: ctx.file, path: `forwards[${i}].max_sources` };
    const pos = () => locate(ctx.root, ["forwards", i, "max_sources"]);
    if (f.max_sources !== undefined && protocol === "tcp") {
      throw configError(
        at,
        pos(),
        "Invalid forward: max_sources applies to UDP forwards only",
        "remove it, or set protocol: udp",
      );
    }
    if (f.max_sources !== undefined && f.max_sources >= ctx.maxStreams) {
      throw configError(
        at,
        pos(),
        `Invalid forward: max_sources ${f.max_sources} is not below limits.max_streams ${ctx.maxStreams}, so a flood on this forward would leave no stream for other applications`,
        `lower it (the default is ${UDP_FORWARD_SOURCES}, at most a quarter of limits.max_streams)`,
      );
    }
    return {
      listen: f.listen,
      to: f.to,
      protocol,
      idleTimeoutS: f.idle_timeout ?? (protocol === "udp" ? UDP_FORWARD_IDLE_S : 0),
      maxSources: protocol === "tcp" ? 0 : f.max_sources ??
        Math.max(1, Math.min(UDP_FORWARD_SOURCES, Math.floor(ctx.maxStreams / 4))),
    };
  });
}

/** The parsed `dns:` section, defaults filled in. */
export function dnsSettings(raw: RawDns): DnsSettings {
  return {
    listen: raw.listen,
    upstream: raw.upstream,
    idleTimeoutS: raw.idle_timeout ?? DNS_TCP_IDLE_S,
  };
}
