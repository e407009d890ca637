/**
 * Public types of the handshake: credentials, user records, derived session
 * secrets and the steps the push-based engines return.
 *
 * @module
 */
import type { AeadId, KexId, PaddingMode } from "./constants.ts";
import type { JwtClaims, JwtKeys } from "../crypto/jwt.ts";

/**
 * A password's SCRAM-SHA-256 keys as the client holds them (RFC 5802
 * section 3), derived once from the password by `saltedPassword` and
 * `scramClientKeys` (lib/crypto/scram.ts); the password itself is not needed
 * per login.
 */
export interface PasswordKeys {
  /** `HMAC(SaltedPassword, "Client Key")`, 32 bytes. */
  clientKey: Uint8Array;
  /** `HMAC(SaltedPassword, "Server Key")`, 32 bytes. */
  serverKey: Uint8Array;
}

/** A password as the server holds it: SCRAM-SHA-256 `StoredKey` and `ServerKey`, never the password. */
export interface PasswordVerifier {
  /** `H(ClientKey)`, 32 bytes. */
  storedKey: Uint8Array;
  /** `HMAC(SaltedPassword, "Server Key")`, 32 bytes. */
  serverKey: Uint8Array;
}

/** How the server verifies a user's JWT: the keys and the checks besides `sub` and `exp`. */
export interface JwtVerifier {
  /** HS256 secrets and Ed25519 public keys that may sign the user's tokens. */
  keys: JwtKeys;
  /** When set, the token's `aud` must contain it. */
  audience?: string;
  /** Clock leeway for `exp` and `nbf` (s); default 0. */
  leewayS?: number;
  /**
   * Why a `routes` claim pattern is not a route, or undefined when it is:
   * a token with one is refused like a bad signature (`JwtCheck.routeError`).
   */
  routeError?: (pattern: string) => string | undefined;
}

/**
 * What a client profile holds to log in: the user id, the static key, and
 * exactly one second factor (`token`, `password` or `jwt`), the one the
 * user's record on the server has.
 */
export interface ClientCredentials {
  /** User id as in `users.yml` (UTF-8, 1..255 bytes). */
  userId: string;
  /** The client's X25519 private key (32 bytes). */
  clientKey: Uint8Array;
  /** The 32-byte pre-shared token (when the user's factor is a token). */
  token?: Uint8Array;
  /** SCRAM-SHA-256 keys of the user's password (when the user's factor is a password). */
  password?: PasswordKeys;
  /** A JSON Web Token naming the user (when the user's factor is a JWT); sent sealed. */
  jwt?: string;
  /** RFC 6238 secret; when present a 6-digit SHA-1 code is sent. */
  totpSecret?: Uint8Array;
}

/**
 * What the server knows about one user: the static public key and exactly
 * one second factor, `token`, `password` or `jwt` (a user with several is
 * checked by password, else JWT; with none, every login fails).
 */
export interface UserRecord {
  /** The user id (1-255 bytes of UTF-8). */
  userId: string;
  /** The client's X25519 public key (32 bytes). */
  publicKey: Uint8Array;
  /** The 32-byte pre-shared token, when the user logs in with a token. */
  token?: Uint8Array;
  /** The password's SCRAM-SHA-256 verifier, when the user logs in with a password. */
  password?: PasswordVerifier;
  /** How the user's JWT is verified, when the user logs in with a JWT. */
  jwt?: JwtVerifier;
  /** When present, the Response must carry a valid TOTP code (±1 step). */
  totpSecret?: Uint8Array;
  /**
   * Set when the user may not log in now (disabled, expired, removed):
   * every login is refused, like wrong credentials on the wire, but one
   * whose client proved this user's static key (and second factor, when
   * the record still holds it) is not a failed login, so a device that
   * keeps reconnecting does not lock its address out for others. `reason`
   * is for the server log; `removed`: only the key is remembered, so no
   * second factor is checked.
   */
  inactive?: { reason: string; removed?: boolean };
}

/**
 * What a client keeps to resume a session on a new connection: the session
 * id and resumption secret of its last handshake (`SessionSecrets`), and the
 * ticket if the server issued one.
 */
export interface ClientResume {
  /** The session id (16 bytes); stays the same across resumptions. */
  sessionId: Uint8Array;
  /** The latest resumption secret (32 bytes); each resumption replaces it. */
  resumptionSecret: Uint8Array;
  /** The latest ticket, when the server issued one (sent instead of the session id). */
  ticket?: Uint8Array;
}

/** What a server's session table holds for one resumable session. */
export interface ResumableSession {
  /** The session's current resumption secret (32 bytes). */
  resumptionSecret: Uint8Array;
  /** The user the session belongs to. */
  userId: string;
}

/** Keys and facts both sides hold after a successful handshake. */
export interface SessionSecrets {
  /** Negotiated protocol version. */
  version: number;
  /** The key exchange used. */
  kex: KexId;
  /** AEAD for the record layer. */
  aead: AeadId;
  /** 16 random bytes chosen by the server. */
  sessionId: Uint8Array;
  /** Client → server application traffic secret (32 bytes). */
  clientToServer: Uint8Array;
  /** Server → client application traffic secret (32 bytes). */
  serverToClient: Uint8Array;
  /** Secret for resuming this session on a new connection (32 bytes, never sent). */
  resumptionSecret: Uint8Array;
  /** The user id (1-255 bytes of UTF-8). */
  userId: string;
  /** Hash of the whole handshake, Finish included (32 bytes). */
  transcriptHash: Uint8Array;
  /** True when this handshake resumed an earlier session (same `sessionId`). */
  resumed: boolean;
  /**
   * True when the server keeps this session resumable (it has a session
   * table or a ticket keyring): both sides then turn on the session layer's
   * acknowledgements and resend buffer.
   */
  resumable: boolean;
  /**
   * The record padding mode this side's records use: the one the Result
   * named when the client asked for one (section 4.7), else this side's
   * own `recordPadding` option; absent when neither says.
   */
  recordPadding?: PaddingMode;
  /** A ticket for `resumptionSecret`, when the server has a ticket keyring (opaque to the client). */
  ticket?: Uint8Array;
}

/** What the client should do after `push`. */
export type ClientStep =
  | { type: "need_more" }
  | { type: "send"; bytes: Uint8Array }
  | {
    type: "done";
    /** The Finish message to send (records may follow at once). */
    send: Uint8Array;
    secrets: SessionSecrets;
    /** Bytes received after the Result (the first records, if any). */
    rest: Uint8Array;
  }
  /**
   * The server is under load and answered with a cookie (section 15):
   * close, and connect again with `cookie` in the options.
   */
  | { type: "cookie"; cookie: Uint8Array };

/** A Hello's nonce and timestamp, once its MAC verified and the local replay guard took it. */
export interface HelloSeen {
  /** The Hello's `nonce_c` (32 bytes). */
  nonce: Uint8Array;
  /** The Hello's timestamp (ms since the epoch). */
  timestampMs: number;
}

/** What {@linkcode ServerHandshake} asks the caller to do next. */
export type ServerStep =
  | { type: "need_more" }
  /**
   * Not a NitroSocks client (bad MAC, wrong length, garbage, replay, stale
   * clock): forward `received()` to the fallback and send nothing ourselves.
   */
  | { type: "probe"; reason: string }
  /**
   * Under load, a Hello without a valid cookie (section 15): send these
   * bytes (a cookie reply) and close. No public-key work was done.
   */
  | { type: "cookie"; bytes: Uint8Array }
  /**
   * Send these bytes (ServerHello, later Result). With the ServerHello,
   * `hello` names the Hello this server's replay guard just accepted, so a
   * fleet can check it against a shared cache before the bytes go out.
   */
  | { type: "send"; bytes: Uint8Array; hello?: HelloSeen }
  /**
   * Authentication failed after the gate; `reason` is for the server log
   * only. Close the connection without sending anything.
   */
  | {
    type: "reject";
    reason: string;
    /**
     * The user whose static key the client proved (log, per-user counters
     * and lockout); absent when the client did not prove a known user's key.
     */
    user?: string;
    /**
     * What the failed login counts against (`auth.lockout`): "source" when
     * the client did not prove a known user's static key (unknown user,
     * wrong key): its address only, never the named user, or anyone could
     * lock a user out by name; "user" when it proved the key but not the
     * second factor (token, password, JWT, TOTP): the address and the user.
     * Absent when the refusal is no failed login (a locked-out or inactive
     * user's right credentials, a resumption). Never on the wire: every
     * refusal looks the same there.
     */
    failed?: "source" | "user";
  }
  | {
    type: "done";
    secrets: SessionSecrets;
    userId: string;
    rest: Uint8Array;
    /** True when the client resumed `secrets.sessionId` (no user credentials were checked). */
    resumed: boolean;
    /** A JWT login's claims: when the session must end (`exp`), and routes that narrow the user's. */
    jwt?: JwtClaims;
  };

/** Receives named intermediate values (copies); for test vectors and debugging only. */
export type HandshakeTrace = (name: string, value: Uint8Array) => void;
