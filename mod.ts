/**
 * NitroSocks as a library: a tunnel to a NitroSocks server whose
 * connections read only authenticated bytes, and the server itself.
 *
 * - {@linkcode connect} opens a tunnel with a client profile (the YAML file
 *   `nitrosocks user add` writes); `tunnel.dial()` gives a
 *   {@linkcode TunnelConn}, a `Deno.Conn`-like connection to a target as
 *   seen from the server. A peer too slow for a deadline shows as a
 *   {@linkcode PeerSlowError}; a target the server refuses as a
 *   {@linkcode Socks5Error} with the SOCKS5 reply code.
 * - {@linkcode listen} runs a server from its `server.yml` (what
 *   `nitrosocks init DIR` writes).
 * - Both report what happens on an {@linkcode EventHub} (`events`), accept
 *   an `AbortSignal`, and close with `await using`.
 *
 * The protocol engines are separate entry points for building on them:
 * `./handshake`, `./record`, `./mux`, `./socks5` and `./config`. The
 * command-line program is `main.ts`.
 *
 * @example Fetch a page through a tunnel
 * ```ts ignore
 * import { connect } from "@nitrosocks/nitrosocks";
 *
 * await using tunnel = await connect("alice.yml");
 * using conn = await tunnel.dial({ hostname: "example.com", port: 80 });
 * await conn.write(new TextEncoder().encode(
 *   "GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
 * ));
 * await conn.readable.pipeTo(Deno.stdout.writable);
 * ```
 *
 * A complete program is `examples/fetch.ts`.
 *
 * @module
 */
export {
  type ClientProfile,
  connect,
  type ConnectOptions,
  DATAGRAM_QUEUE_MAX,
  type DialOptions,
  listen,
  type ListenOptions,
  MAX_DATAGRAM_BYTES,
  PeerSlowError,
  type PeerSlowErrorOptions,
  type PeerSlowOperation,
  type ReadFullOptions,
  type ReceiveOptions,
  type Tunnel,
  type TunnelConn,
  type TunnelDatagramConn,
  TunnelError,
  type TunnelServer,
} from "./lib/api/mod.ts";
export {
  type EventAddr,
  EventHub,
  type EventOf,
  type EventSink,
  type EventStreamOptions,
  type Logger,
  type LogLevel,
  type Observer,
  type RefusalCause,
  type RefusalReason,
  type TunnelEvent,
  type TunnelEventInit,
  type TunnelEventType,
} from "./lib/observe/mod.ts";
export { Reply, type ReplyCode, replyName, Socks5Error } from "./lib/socks5/mod.ts";
export {
  AEAD_NAMES,
  type AeadName,
  type ClientConfig,
  type Endpoint,
  type HostPort,
  KEX_NAMES,
  type KexName,
  type ServerConfig,
} from "./lib/config/mod.ts";
export type { SessionSettings } from "./lib/config/server.ts";
export { ConfigError } from "./lib/errors.ts";
