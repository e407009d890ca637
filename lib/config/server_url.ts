/**
 * The URL form of a client's way in: `tls://host:port`, `tcp://host:port`,
 * `wss://host:port/path`, `ws://host:port/path`. The scheme names the
 * transport (lib/transport/registry.ts), the authority the address, the
 * path where a WebSocket is served.
 *
 * @module
 */
import { formatHostPort, isHost, splitHostPort } from "../wire/host_port.ts";
import type { HostPort } from "../wire/host_port.ts";
import type { TransportName } from "./server.ts";

/** A parsed server URL. */
export interface ServerUrl {
  /** The scheme: which transport. */
  transport: TransportName;
  /** Where to dial. */
  server: HostPort;
  /** `ws`/`wss` only: the WebSocket's path. */
  path?: string;
}

const DEFAULT_PORTS: Record<TransportName, number | undefined> = {
  tls: 443,
  tcp: undefined,
  ws: 80,
  wss: 443,
};

/** The longest server URL read (a host name is at most 253, a path 255 characters). */
export const MAX_URL_LENGTH = 1024;
const URL_FORM = /^([a-z]+):\/\/([^/?#]*)([^?#]*)$/;
const PATH = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/]{0,254}$/;

/**
 * Parses a server URL. Returns the parts, or a sentence saying what is
 * wrong (for a `ConfigError` or a usage error). The port defaults to 443
 * for `tls` and `wss` and 80 for `ws`; `tcp` needs one. `ws`/`wss` take a
 * path (default "/"); `tls`/`tcp` take none. No user info, query or
 * fragment.
 *
 * @example
 * ```ts
 * import { parseServerUrl } from "./server_url.ts";
 * parseServerUrl("wss://cdn.example/assets/ws");
 * // { transport: "wss", server: { host: "cdn.example", port: 443 }, path: "/assets/ws" }
 * parseServerUrl("tcp://[::1]:8443"); // { transport: "tcp", server: { host: "::1", port: 8443 } }
 * ```
 */
export function parseServerUrl(text: string): ServerUrl | string {
  if (text.length > MAX_URL_LENGTH) {
    return `the URL is ${text.length} characters long; at most ${MAX_URL_LENGTH} are accepted`;
  }
  // Checked before the pattern, whose two runs would otherwise backtrack over a "?" or "#".
  const m = /[?#]/.test(text) ? null : URL_FORM.exec(text);
  if (m === null) {
    return `${
      JSON.stringify(text)
    } is not a URL such as "wss://cdn.example/ws" (no query or fragment)`;
  }
  const scheme = m[1]!;
  if (!(scheme in DEFAULT_PORTS)) {
    return `unknown scheme "${scheme}://": expected tls://, tcp://, wss:// or ws://`;
  }
  const transport = scheme as TransportName;
  const authority = m[2]!;
  if (authority.includes("@")) return "a server URL carries no user name or password";
  let host: string;
  let port: number;
  const split = splitHostPort(authority);
  if (split !== undefined) {
    host = split.host;
    port = split.port;
    if (port === 0) return "the port must be 1..65535";
  } else {
    const def = DEFAULT_PORTS[transport];
    if (def === undefined) return `${scheme}:// needs a port: ${scheme}://HOST:PORT`;
    host = authority.startsWith("[") && authority.endsWith("]")
      ? authority.slice(1, -1)
      : authority;
    if (host.includes(":") && !authority.startsWith("[")) {
      return "IPv6 addresses go in brackets: [::1]";
    }
    port = def;
  }
  if (!isHost(host)) return `${JSON.stringify(host)} is not a DNS name or IP address`;
  const path = m[3]!;
  if (transport === "ws" || transport === "wss") {
    const p = path === "" ? "/" : path;
    if (!PATH.test(p)) return `${JSON.stringify(p)} is not a URL path`;
    return { transport, server: { host, port }, path: p };
  }
  if (path !== "" && path !== "/") return `${scheme}:// takes no path (only ws:// and wss:// do)`;
  return { transport, server: { host, port } };
}

/**
 * The URL for a transport, address and path; `parseServerUrl` reads it
 * back. The port is always written.
 *
 * @example
 * ```ts
 * import { formatServerUrl } from "./server_url.ts";
 * formatServerUrl({ transport: "wss", server: { host: "::1", port: 8443 }, path: "/ws" });
 * // "wss://[::1]:8443/ws"
 * ```
 */
export function formatServerUrl(u: ServerUrl): string {
  const path = u.transport === "ws" || u.transport === "wss" ? u.path ?? "/" : "";
  return `${u.transport}://${formatHostPort(u.server.host, u.server.port)}${path}`;
}
