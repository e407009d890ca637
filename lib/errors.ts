/**
 * Error classes shared by every layer. Messages never carry key material;
 * authentication failures all map to one code seen from outside.
 *
 * @module
 */

/** Machine-readable reasons a peer's bytes were refused. */
export type ProtocolErrorCode =
  | "MALFORMED"
  | "TOO_LARGE"
  | "TRUNCATED"
  | "DECRYPT_FAILED"
  | "AUTH_FAILED"
  | "REPLAY"
  | "STALE"
  | "UNSUPPORTED"
  | "BAD_STATE"
  | "LIMIT"
  | "CLOSED";

/**
 * A peer sent bytes that break the protocol.
 *
 * @example
 * ```ts
 * import { ProtocolError } from "./errors.ts";
 * const e = new ProtocolError("TOO_LARGE", "Cannot decode frame: length 70000 exceeds maximum 65535");
 * console.log(e.code); // "TOO_LARGE"
 * ```
 */
export class ProtocolError extends Error {
  /** The reason, for logs and tests. */
  readonly code: ProtocolErrorCode;
  /**
   * For `AUTH_FAILED` raised by the client handshake: what the client could
   * tell (callers branch on this, never on the message text).
   */
  readonly authFailure: AuthFailure | undefined;
  /** `code` says why; `message` what, for people; `options.authFailure` what the client saw. */
  constructor(
    code: ProtocolErrorCode,
    message: string,
    options?: ErrorOptions & { authFailure?: AuthFailure },
  ) {
    super(message, options);
    this.name = "ProtocolError";
    this.code = code;
    this.authFailure = options?.authFailure;
  }
}

/**
 * What a failed login looks like from the client: the server's identity did
 * not match the pinned key; it answered as a web server (our first message
 * was not accepted); it closed after our credentials; it closed after our
 * resumption proof (it no longer holds the session).
 */
export type AuthFailure = "server_identity" | "decoy" | "login_refused" | "resume_refused";

/**
 * A configuration file is wrong; says where and what to do.
 *
 * @example
 * ```ts
 * import { ConfigError } from "./errors.ts";
 * const e = new ConfigError("Unknown key \"listn\"", { file: "server.yml", line: 3, column: 1, hint: "did you mean \"listen\"?" });
 * console.log(e.message); // server.yml:3:1: Unknown key "listn" (did you mean "listen"?)
 * ```
 */
export class ConfigError extends SyntaxError {
  /** The file the error is in, when known. */
  readonly file: string | undefined;
  /** 1-based line in `file`, when known. */
  readonly line: number | undefined;
  /** 1-based column in `file`, when known. */
  readonly column: number | undefined;
  /** The key path, e.g. "limits.stream_window", when known. */
  readonly key: string | undefined;
  /** What to do about it, when there is advice. */
  readonly hint: string | undefined;
  /** `detail` says what is wrong; `where` where, and the hint. */
  constructor(
    detail: string,
    where: { file?: string; line?: number; column?: number; key?: string; hint?: string } = {},
  ) {
    const loc = where.file === undefined
      ? ""
      : `${where.file}${where.line === undefined ? "" : `:${where.line}:${where.column ?? 1}`}: `;
    super(`${loc}${detail}${where.hint === undefined ? "" : ` (${where.hint})`}`);
    this.name = "ConfigError";
    this.file = where.file;
    this.line = where.line;
    this.column = where.column;
    this.key = where.key;
    this.hint = where.hint;
  }
}
