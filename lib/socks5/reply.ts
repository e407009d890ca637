/**
 * SOCKS5 reply codes (RFC 1928 section 6), the error that carries one, and
 * the mapping from dial errors to reply codes.
 *
 * @module
 */

/**
 * Reply codes, RFC 1928 section 6 (REP field).
 *
 * @example
 * ```ts
 * import { Reply } from "./reply.ts";
 * Reply.CONNECTION_REFUSED; // 5
 * ```
 */
export const Reply = {
  SUCCEEDED: 0,
  GENERAL_FAILURE: 1,
  NOT_ALLOWED: 2,
  NETWORK_UNREACHABLE: 3,
  HOST_UNREACHABLE: 4,
  CONNECTION_REFUSED: 5,
  TTL_EXPIRED: 6,
  COMMAND_NOT_SUPPORTED: 7,
  ADDRESS_TYPE_NOT_SUPPORTED: 8,
} as const;

/** One of the assigned reply codes 0..8. */
export type ReplyCode = typeof Reply[keyof typeof Reply];

const REPLY_NAMES = [
  "succeeded",
  "general SOCKS server failure",
  "connection not allowed by ruleset",
  "network unreachable",
  "host unreachable",
  "connection refused",
  "TTL expired",
  "command not supported",
  "address type not supported",
] as const;

/**
 * The RFC 1928 wording of a reply code, e.g. "connection refused".
 *
 * @example
 * ```ts
 * import { replyName } from "./reply.ts";
 * replyName(5); // "connection refused"
 * replyName(42); // "unassigned reply 0x2a"
 * ```
 */
export function replyName(reply: number): string {
  return REPLY_NAMES[reply] ?? `unassigned reply 0x${reply.toString(16).padStart(2, "0")}`;
}

/**
 * A SOCKS5 or HTTP CONNECT exchange failed; `reply` is the RFC 1928 code to
 * send (or that was received).
 *
 * @example
 * ```ts
 * import { Reply, Socks5Error } from "./reply.ts";
 * const e = new Socks5Error(Reply.COMMAND_NOT_SUPPORTED, "Cannot accept SOCKS5 request: command BIND is not supported");
 * e.reply; // 7
 * ```
 */
export class Socks5Error extends Error {
  /** RFC 1928 reply code. */
  readonly reply: number;
  /** `reply` is the RFC 1928 reply code; `message` says what failed. */
  constructor(reply: number, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "Socks5Error";
    this.reply = reply;
  }
}

/** Message fragments of OS errors that Deno reports as plain `Error`. */
const HOST_UNREACHABLE_TEXT =
  /failed to lookup address|name or service not known|nodename nor servname|no address associated|temporary failure in name resolution|no route to host|host is unreachable|os error 113\)/i;
const NETWORK_UNREACHABLE_TEXT = /network is unreachable|os error 101\)/i;
const REFUSED_TEXT = /connection refused|os error 111\)/i;
const TIMED_OUT_TEXT = /timed out|os error 110\)/i;

function byName(name: string): number | undefined {
  switch (name) {
    case "ConnectionRefused":
      return Reply.CONNECTION_REFUSED;
    case "TimedOut":
    case "TimeoutError":
    case "NotFound":
    case "AddrNotAvailable":
      return Reply.HOST_UNREACHABLE;
    case "NetworkUnreachable":
      return Reply.NETWORK_UNREACHABLE;
    case "PermissionDenied":
    case "NotCapable":
      return Reply.NOT_ALLOWED;
    default:
      return undefined;
  }
}

function byMessage(message: string): number | undefined {
  if (HOST_UNREACHABLE_TEXT.test(message)) return Reply.HOST_UNREACHABLE;
  if (NETWORK_UNREACHABLE_TEXT.test(message)) return Reply.NETWORK_UNREACHABLE;
  if (REFUSED_TEXT.test(message)) return Reply.CONNECTION_REFUSED;
  if (TIMED_OUT_TEXT.test(message)) return Reply.HOST_UNREACHABLE;
  return undefined;
}

/**
 * Maps an error from dialing a destination to the reply code to send.
 * Matches by error name (so this module needs no `Deno` global), then by
 * OS message, then follows `cause` (up to 8 levels):
 *
 * | error | reply |
 * |---|---|
 * | `Socks5Error` | its `reply` |
 * | `ConnectionRefused` | 5 connection refused |
 * | `TimedOut`, `TimeoutError`, `NotFound`, `AddrNotAvailable`, "failed to lookup address", "No route to host" | 4 host unreachable |
 * | `NetworkUnreachable` | 3 network unreachable |
 * | `PermissionDenied`, `NotCapable` | 2 not allowed |
 * | anything else | 1 general failure |
 *
 * @example
 * ```ts
 * import { replyForError } from "./reply.ts";
 * replyForError(new Deno.errors.ConnectionRefused("Connection refused (os error 111)")); // 5
 * replyForError(new Error("failed to lookup address information: Name or service not known")); // 4
 * ```
 */
export function replyForError(e: unknown): number {
  let cur: unknown = e;
  for (let depth = 0; depth < 8 && typeof cur === "object" && cur !== null; depth++) {
    if (cur instanceof Socks5Error) return cur.reply;
    const name = "name" in cur && typeof cur.name === "string" ? cur.name : "";
    const fromName = byName(name);
    if (fromName !== undefined) return fromName;
    const message = "message" in cur && typeof cur.message === "string" ? cur.message : "";
    const fromMessage = byMessage(message);
    if (fromMessage !== undefined) return fromMessage;
    cur = "cause" in cur ? cur.cause : undefined;
  }
  return Reply.GENERAL_FAILURE;
}
