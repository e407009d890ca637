/**
 * What a front (a CDN, nginx, HAProxy) speaks to the server, pure:
 * WebSocket framing and its opening handshake for the `ws` transports, and
 * the PROXY protocol v2 header a TCP front puts before the client's bytes.
 * The sockets are in `lib/transport`.
 *
 * @module
 */
export * from "./websocket.ts";
export * from "./proxy_v2.ts";
