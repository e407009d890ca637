/**
 * The SOCKS5 (RFC 1928, RFC 1929) and HTTP CONNECT edges, pure: messages,
 * the server handshake state machine, the CONNECT parser, and the mapping
 * from dial errors to reply codes and HTTP statuses. No `Deno.*`, no
 * awaits, no timers; the tunnel owns sockets and timeouts.
 *
 * Behaviour at the edges is specified in docs/PROTOCOL.md part 7 (socks5 and http connect edges).
 *
 * @example
 * ```ts
 * import { encodeReply, Reply, Socks5ServerHandshake } from "./mod.ts";
 * const hs = new Socks5ServerHandshake();
 * const step = hs.push(new Uint8Array([5, 1, 0, 5, 1, 0, 3, 4, 97, 46, 105, 111, 1, 187]));
 * if (step.type === "request") {
 *   // write step.send (method selection), dial step.request, then:
 *   encodeReply(Reply.SUCCEEDED, { host: "0.0.0.0", port: 0 });
 * }
 * ```
 *
 * @module
 */
export {
  type AddressType,
  type ClassifiedHost,
  classifyHost,
  formatIpv4,
  formatIpv6,
  isValidDomain,
  MAX_DOMAIN_LENGTH,
  parseIpv4,
  parseIpv6,
} from "./address.ts";
export { Reply, type ReplyCode, replyForError, replyName, Socks5Error } from "./reply.ts";
export {
  ATYP_DOMAIN,
  ATYP_IPV4,
  ATYP_IPV6,
  type BindAddress,
  CMD_BIND,
  CMD_CONNECT,
  CMD_UDP_ASSOCIATE,
  decodeReply,
  decodeRequest,
  encodeReply,
  encodeRequest,
  MAX_MESSAGE_LENGTH,
  messageLength,
  type Socks5Command,
  type Socks5Reply,
  type Socks5Request,
  SOCKS_VERSION,
} from "./message.ts";
export {
  AUTH_VERSION,
  METHOD_NO_ACCEPTABLE,
  METHOD_NO_AUTH,
  METHOD_USERNAME_PASSWORD,
  type Socks5Auth,
  Socks5ServerHandshake,
  type Socks5Step,
} from "./server.ts";
export {
  decodeUdpAddress,
  decodeUdpPacket,
  encodeUdpAddress,
  UDP_HEADER_PREFIX,
  type UdpAddress,
  udpAddressLength,
  type UdpPacket,
} from "./udp.ts";
export {
  ChunkedBodyEnd,
  type HttpBody,
  type HttpConnectOptions,
  HttpConnectParser,
  httpConnectResponse,
  type HttpConnectStep,
  httpStatusForReply,
  httpStatusResponse,
  MAX_HTTP_HEADER_BYTES,
  parseHttpConnect,
  rewriteResponseHead,
} from "./http_connect.ts";
export { PAC_MEDIA_TYPE, PAC_PATH, type PacOptions, pacResponse, proxyAutoConfig } from "./pac.ts";
