/**
 * Turns Deno's dial and listen errors into messages a user can act on,
 * keeping the `Deno.errors` class (so `replyForError` in `lib/socks5` still
 * maps them) and the original error as `cause`.
 *
 * @module
 */
import { formatHostPort } from "../wire/host_port.ts";

/** What was being dialed, for messages. */
export interface DialContext {
  hostname: string;
  port: number;
  /** TLS only: the name the certificate was checked against. */
  serverName?: string;
  /** TLS only: whether the caller supplied its own CA certificates. */
  customCa?: boolean;
}

export { formatHostPort };

/**
 * Formats a duration for messages: "10 s", "1.5 s", "250 ms".
 *
 * @example
 * ```ts
 * import { formatDuration } from "./errors.ts";
 * formatDuration(10_000); // "10 s"
 * ```
 */
export function formatDuration(ms: number): string {
  return ms >= 1000 ? `${Math.round(ms / 100) / 10} s` : `${ms} ms`;
}

/**
 * The error `dial` throws when its timeout fires.
 *
 * @example
 * ```ts
 * import { dialTimeoutError } from "./errors.ts";
 * dialTimeoutError({ hostname: "127.0.0.1", port: 8443 }, 10_000).message;
 * // "timed out after 10 s connecting to 127.0.0.1:8443"
 * ```
 */
export function dialTimeoutError(ctx: DialContext, ms: number): Deno.errors.TimedOut {
  return new Deno.errors.TimedOut(
    `timed out after ${formatDuration(ms)} connecting to ${formatHostPort(ctx.hostname, ctx.port)}`,
  );
}

function errName(e: unknown): string {
  return e instanceof Error ? e.name : "";
}

function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * Explains an error from connecting (TCP) or from the TLS handshake:
 *
 * | Deno error | message |
 * |---|---|
 * | `ConnectionRefused` | "connection refused by 127.0.0.1:8443" |
 * | `NetworkUnreachable` | "network unreachable connecting to …" |
 * | lookup failure (`Error`) | "host not found: example.invalid" (`NotFound`) |
 * | "No route to host" | "host unreachable: …" |
 * | `InvalidData` "UnknownIssuer"/"BadSignature" | "TLS certificate not trusted by the profile's CA: …" |
 * | `InvalidData` "not valid for name" | "TLS certificate not valid for server name "x": …" |
 * | `InvalidData` "expired" / "not valid yet" | "TLS certificate expired: …" / "TLS certificate not yet valid: …" |
 * | `InvalidData` "InvalidContentType" (a reply that is not TLS) | "127.0.0.1:8443 does not speak TLS: …" |
 * | other `InvalidData`, `UnexpectedEof`, `ConnectionReset` in TLS | "TLS handshake with … failed: …" |
 *
 * Anything else is returned unchanged.
 *
 * @example
 * ```ts
 * import { explainDialError } from "./errors.ts";
 * const e = explainDialError(new Deno.errors.ConnectionRefused("Connection refused (os error 111)"), { hostname: "127.0.0.1", port: 8443 });
 * e.message; // "connection refused by 127.0.0.1:8443"
 * ```
 */
export function explainDialError(e: unknown, ctx: DialContext): Error {
  const addr = formatHostPort(ctx.hostname, ctx.port);
  const name = errName(e);
  const msg = errMessage(e);
  const cause = { cause: e };
  const tls = ctx.serverName !== undefined;
  if (name === "ConnectionRefused") {
    return new Deno.errors.ConnectionRefused(`connection refused by ${addr}`, cause);
  }
  if (name === "NetworkUnreachable") {
    return new Deno.errors.NetworkUnreachable(`network unreachable connecting to ${addr}`, cause);
  }
  if (
    /failed to lookup address|name or service not known|nodename nor servname|no address associated/i
      .test(msg)
  ) {
    return new Deno.errors.NotFound(`host not found: ${ctx.hostname}`, cause);
  }
  if (/no route to host|host is unreachable/i.test(msg)) {
    return new Error(`host unreachable: ${addr}`, cause);
  }
  if (tls && name === "InvalidData" && /invalid peer certificate/i.test(msg)) {
    const detail = msg.replace(/^.*invalid peer certificate:\s*/i, "");
    if (/UnknownIssuer|BadSignature|unknown issuer/i.test(detail)) {
      const anchor = ctx.customCa ? "the profile's CA" : "the system's root CAs";
      return new Deno.errors.InvalidData(
        `TLS certificate not trusted by ${anchor}: ${addr} presented a certificate from an unknown issuer`,
        cause,
      );
    }
    if (/not valid for name|NotValidForName/i.test(detail)) {
      return new Deno.errors.InvalidData(
        `TLS certificate not valid for server name "${ctx.serverName}": ${detail}`,
        cause,
      );
    }
    if (/expired/i.test(detail)) {
      return new Deno.errors.InvalidData(`TLS certificate expired: ${detail}`, cause);
    }
    if (/not valid yet|NotValidYet/i.test(detail)) {
      return new Deno.errors.InvalidData(`TLS certificate not yet valid: ${detail}`, cause);
    }
    return new Deno.errors.InvalidData(`TLS certificate rejected for ${addr}: ${detail}`, cause);
  }
  if (
    tls &&
    /InvalidContentType|corrupt message|wrong version number|packet length too long/i.test(msg)
  ) {
    return new Deno.errors.InvalidData(
      `${addr} does not speak TLS: it answered the TLS handshake with something else ` +
        "(a plain TCP, HTTP or other service on that port)",
      cause,
    );
  }
  if (tls && (name === "InvalidData" || name === "UnexpectedEof" || name === "ConnectionReset")) {
    const E = Deno.errors[name];
    return new E(`TLS handshake with ${addr} failed: ${msg}`, cause);
  }
  return e instanceof Error ? e : new Error(msg, cause);
}

/**
 * Explains an error from `Deno.listen` / `Deno.listenTls`.
 *
 * @example
 * ```ts
 * import { explainListenError } from "./errors.ts";
 * explainListenError(new Deno.errors.AddrInUse("Address already in use (os error 98)"), { hostname: "127.0.0.1", port: 8443 }).message;
 * // "Cannot listen on 127.0.0.1:8443: address already in use"
 * ```
 */
export function explainListenError(e: unknown, ctx: { hostname: string; port: number }): Error {
  const addr = formatHostPort(ctx.hostname, ctx.port);
  const name = errName(e);
  const cause = { cause: e };
  if (name === "AddrInUse") {
    return new Deno.errors.AddrInUse(`Cannot listen on ${addr}: address already in use`, cause);
  }
  if (name === "AddrNotAvailable") {
    return new Deno.errors.AddrNotAvailable(
      `Cannot listen on ${addr}: address not available on this host`,
      cause,
    );
  }
  if (name === "InvalidData" || /certificate|private key|pem/i.test(errMessage(e))) {
    return new Deno.errors.InvalidData(
      `Cannot listen with TLS on ${addr}: ${errMessage(e)}`,
      cause,
    );
  }
  return e instanceof Error ? e : new Error(errMessage(e), cause);
}
