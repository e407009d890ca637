/**
 * The NitroSocks v1 handshake, pure: Hello → ServerHello → Response →
 * Result → Finish, with the probe gate decision on the server. No I/O, no
 * timers, no awaits; the tunnel feeds bytes and acts on the returned steps.
 * Spec: docs/PROTOCOL.md part 2 (handshake).
 *
 * @example
 * ```ts
 * import {
 *   ClientHandshake, generateClientKey, generateServerIdentity, generateToken, ReplayGuard,
 *   serverPublicKey, ServerHandshake,
 * } from "./mod.ts";
 * const identity = generateServerIdentity();
 * const key = generateClientKey();
 * const token = generateToken();
 * const client = new ClientHandshake({
 *   serverPublicKey: serverPublicKey(identity),
 *   credentials: { userId: "alice", clientKey: key.privateKey, token },
 *   now: Date.now,
 * });
 * const server = new ServerHandshake({
 *   identity,
 *   lookupUser: (id) => id === "alice" ? { userId: id, publicKey: key.publicKey, token } : undefined,
 *   replay: new ReplayGuard(),
 *   now: Date.now,
 * });
 * const step = server.push(client.hello()); // { type: "send", bytes: <ServerHello> }
 * ```
 *
 * Over TLS with ALPN `h2` a server first sends an HTTP/2 server preface
 * (spec section 6.2.2): feed the bytes read before the ServerHello through
 * a {@linkcode ServerPrefaceSkipper} and push what it returns.
 *
 * Resumption (spec section 13): a later connection passes
 * `resume: { sessionId, resumptionSecret, ticket }` from the last
 * `SessionSecrets` to the client; the server resolves it through
 * `lookupSession` (its session table) or `tickets` (a {@linkcode TicketKeyring}
 * shared with the other servers behind the same address).
 *
 * @module
 */
export {
  AEAD_IDS,
  AEAD_WIRE_IDS,
  type AeadId,
  HANDSHAKE_MAX_MESSAGE,
  HELLO_MAX_BYTES,
  HELLO_MIN_BYTES,
  KEX_IDS,
  KEX_WIRE_IDS,
  type KexId,
  PADDING_MODES,
  PADDING_WIRE_IDS,
  type PaddingMode,
  PROTOCOL_VERSION,
  RESPONSE_MAX_BYTES,
  RESULT_MAX_BYTES,
  RESUME_RESPONSE_MAX_BYTES,
  RESUME_RESPONSE_MIN_BYTES,
  SERVER_HELLO_MAX_BYTES,
  SUPPORTED_VERSIONS,
  TICKET_FRAME_MAX_BYTES,
  TICKET_MAX_BYTES,
} from "./constants.ts";
export {
  clientPublicKey,
  decodeServerIdentity,
  encodeServerIdentity,
  generateClientKey,
  generateServerIdentity,
  generateToken,
  SERVER_IDENTITY_BYTES,
  SERVER_PUBLIC_KEY_BYTES,
  type ServerIdentity,
  serverPublicKey,
} from "./identity.ts";
export {
  DEFAULT_REPLAY_CAPACITY,
  DEFAULT_REPLAY_WINDOW_MS,
  ReplayGuard,
  type ReplayGuardOptions,
  type ReplayVerdict,
} from "./replay.ts";
export {
  decodeTicketKeys,
  DEFAULT_TICKET_LIFETIME_MS,
  encodeTicketKeys,
  generateTicketKey,
  TICKET_KEY_BYTES,
  type TicketKey,
  TicketKeyring,
  type TicketKeyringOptions,
  type TicketState,
} from "./ticket.ts";
export { ClientHandshake, type ClientHandshakeOptions } from "./client.ts";
export {
  BackendPrefaceFilter,
  H2_SERVER_PREFACE,
  isGoawayHeader,
  MAX_PREFACE_SETTINGS_BYTES,
  ServerPrefaceSkipper,
} from "./h2_preface.ts";
export {
  COOKIE_BYTES,
  COOKIE_REPLY_BYTES,
  COOKIE_SECRET_MS,
  CookieJar,
  type CookieJarOptions,
} from "./cookie.ts";
export {
  DEFAULT_CLOCK_WINDOW_MS,
  type HelloMacs,
  ServerHandshake,
  type ServerHandshakeOptions,
} from "./server.ts";
export type {
  ClientCredentials,
  ClientResume,
  ClientStep,
  HandshakeTrace,
  HelloSeen,
  JwtVerifier,
  PasswordKeys,
  PasswordVerifier,
  ResumableSession,
  ServerStep,
  SessionSecrets,
  UserRecord,
} from "./types.ts";
/** JWT keys and claims (lib/crypto/jwt.ts), as `UserRecord.jwt` and a JWT login's result use them. */
export type { JwtClaims, JwtKeys } from "../crypto/jwt.ts";
/** Where handshakes take random bytes from (tests pass a seeded source). */
export type { RandomSource } from "../crypto/mod.ts";
/** What `ClientHandshake.closed()` reports, and its reasons. */
export { type AuthFailure, ProtocolError, type ProtocolErrorCode } from "../errors.ts";
