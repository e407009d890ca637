/**
 * Public types of the handshake: credentials, user records, derived session
 * secrets and the steps the push-based engines return.
 *
 * @module
 */
import type { AeadId, KexId } from "./constants.ts";

/** What a client profile holds to log in. */
export interface ClientCredentials {
  /** User id as in `users.yml` (UTF-8, 1..255 bytes). */
  userId: string;
  /** The client's X25519 private key (32 bytes). */
  clientKey: Uint8Array;
  /** The 32-byte pre-shared token. */
  token: Uint8Array;
  /** RFC 6238 secret; when present a 6-digit SHA-1 code is sent. */
  totpSecret?: Uint8Array;
}

/** What the server knows about one user. */
export interface UserRecord {
  userId: string;
  /** The client's X25519 public key (32 bytes). */
  publicKey: Uint8Array;
  /** The 32-byte pre-shared token. */
  token: Uint8Array;
  /** When present, the Response must carry a valid TOTP code (±1 step). */
  totpSecret?: Uint8Array;
}

/** Keys and facts both sides hold after a successful handshake. */
export interface SessionSecrets {
  /** Negotiated protocol version. */
  version: number;
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
  userId: string;
  /** Hash of the whole handshake, Finish included (32 bytes). */
  transcriptHash: Uint8Array;
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
  };

/** What the server should do after `push`. */
export type ServerStep =
  | { type: "need_more" }
  /**
   * Not a NitroSocks client (bad MAC, wrong length, garbage, replay, stale
   * clock): forward `received()` to the fallback and send nothing ourselves.
   */
  | { type: "probe"; reason: string }
  /** Send these bytes (ServerHello, later Result). */
  | { type: "send"; bytes: Uint8Array }
  /**
   * Authentication failed after the gate; `reason` is for the server log
   * only. Close the connection without sending anything.
   */
  | { type: "reject"; reason: string }
  | { type: "done"; secrets: SessionSecrets; userId: string; rest: Uint8Array };

/** Receives named intermediate values (copies); for test vectors and debugging only. */
export type HandshakeTrace = (name: string, value: Uint8Array) => void;
