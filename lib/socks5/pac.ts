/**
 * The proxy auto-config file (PAC) the client's mixed port serves at
 * `/proxy.pac`: a `FindProxyForURL` that sends every request to that port,
 * as SOCKS5 (names resolved by the server) or as an HTTP proxy when the
 * port asks for credentials (browsers send none to a SOCKS5 proxy). No
 * `DIRECT` fallback: a browser that cannot reach the proxy fails instead of
 * leaking the request around the tunnel.
 *
 * @module
 */
import { formatHostPort } from "../wire/host_port.ts";

/** The path the PAC file is served at. */
export const PAC_PATH = "/proxy.pac";

/** The PAC file's media type (what browsers and WPAD expect). */
export const PAC_MEDIA_TYPE = "application/x-ns-proxy-autoconfig";

/** Options for {@linkcode proxyAutoConfig}. */
export interface PacOptions {
  /** The proxy's address, as the browser reached it. */
  host: string;
  /** The proxy's port. */
  port: number;
  /** The port asks for credentials: name only the HTTP proxy. */
  auth?: boolean;
}

/**
 * The PAC file's text for a mixed port at `host:port`.
 *
 * @example
 * ```ts
 * import { proxyAutoConfig } from "./pac.ts";
 * proxyAutoConfig({ host: "127.0.0.1", port: 1080 }).includes('"SOCKS5 127.0.0.1:1080; PROXY 127.0.0.1:1080"'); // true
 * ```
 */
export function proxyAutoConfig(options: PacOptions): string {
  const at = formatHostPort(options.host, options.port);
  const route = options.auth ? `PROXY ${at}` : `SOCKS5 ${at}; PROXY ${at}`;
  return [
    "// NitroSocks: every request through the tunnel, never around it.",
    "function FindProxyForURL(url, host) {",
    `  return ${JSON.stringify(route)};`,
    "}",
    "",
  ].join("\n");
}

/**
 * The whole HTTP response for a GET (or HEAD: the head only) of the PAC
 * file: 200, its media type, no caching (the port may change), close.
 *
 * @example
 * ```ts
 * import { pacResponse } from "./pac.ts";
 * const r = new TextDecoder().decode(pacResponse("HEAD", { host: "127.0.0.1", port: 1080 }));
 * r.startsWith("HTTP/1.1 200 OK\r\n"); // true
 * ```
 */
export function pacResponse(method: "GET" | "HEAD", options: PacOptions): Uint8Array {
  const body = new TextEncoder().encode(proxyAutoConfig(options));
  const head = new TextEncoder().encode(
    `HTTP/1.1 200 OK\r\nContent-Type: ${PAC_MEDIA_TYPE}\r\nContent-Length: ${body.length}\r\n` +
      "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
  );
  if (method === "HEAD") return head;
  const out = new Uint8Array(head.length + body.length);
  out.set(head);
  out.set(body, head.length);
  return out;
}
