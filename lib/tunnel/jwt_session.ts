/**
 * A JWT login's session over time (docs/PROTOCOL.md part 2 section 14.7).
 *
 * - Server, {@linkcode JwtLifetime}: ends the session when its token stops
 *   being accepted (`exp` plus the leeway), unless the client sends a fresh
 *   token in a RENEW frame first: verified like a login (the user's current
 *   keys, `sub` the session's user), with a later `exp` and the same
 *   `routes` claim, it moves the end; a refused one is logged and changes
 *   nothing.
 * - Client, {@linkcode JwtRenewer}: shortly before `exp`, re-reads the
 *   profile's `jwt_file` until it holds a token with a later `exp`, and
 *   sends that token.
 *
 * @module
 */
import { type JwtClaims, verifyJwt } from "../crypto/jwt.ts";
import { fromBase64Url } from "../crypto/mod.ts";
import type { JwtVerifier } from "../handshake/mod.ts";
import { describeError, type EventSink, type Logger } from "../observe/mod.ts";
import { decodeRenewPayload } from "../session/mod.ts";

/** setTimeout holds at most 2^31-1 ms; a later end re-arms itself. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Options for {@linkcode JwtLifetime}. */
export interface JwtLifetimeOptions {
  /** The session's local number (events). */
  session: number;
  user: string;
  /** The login's claims: `expiresMs` (exp plus the leeway) and `routes`. */
  claims: JwtClaims;
  /** The user's current JWT keys and checks; undefined once the user is gone or not a JWT user. */
  verifier: () => JwtVerifier | undefined;
  /** Ends the session (NOTICE REVOKED, then release): the token expired. */
  end: () => void;
  events: EventSink;
  /** The clock, ms since the Unix epoch; default `Date.now`. */
  now?: () => number;
}

/**
 * The server's end-at-expiry timer of one JWT session, re-armed by each
 * accepted renewal.
 *
 * @example
 * ```ts ignore
 * const life = new JwtLifetime({ session: no, user, claims, verifier, end, events });
 * // on a RENEW frame: life.renew(payload); when the session ends: life.cancel();
 * ```
 */
export class JwtLifetime {
  readonly #o: JwtLifetimeOptions;
  readonly #now: () => number;
  #expiresMs: number;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: JwtLifetimeOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#expiresMs = options.claims.expiresMs;
    this.#arm();
  }

  /** When the session ends (exp plus the leeway), ms since the Unix epoch. */
  get expiresMs(): number {
    return this.#expiresMs;
  }

  /** The session ended: no more timer. */
  cancel(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /**
   * A RENEW frame's payload: takes the token (re-arming the end at its
   * `exp`) or refuses it; either way one `jwt_renewal` event. Returns
   * whether it was taken.
   */
  renew(payload: Uint8Array): boolean {
    const why = this.#check(payload);
    if (typeof why === "string") {
      this.#emit(false, why);
      return false;
    }
    const before = this.#expiresMs;
    this.#expiresMs = why.expiresMs;
    this.#arm();
    this.#emit(true, `exp moved from ${new Date(before).toISOString()}`);
    return true;
  }

  /** The fresh token's claims, or why it is refused. */
  #check(payload: Uint8Array): JwtClaims | string {
    if (this.#timer === undefined) return "the session has already ended";
    let token: string;
    try {
      token = decodeRenewPayload(payload);
    } catch (e) {
      return describeError(e);
    }
    const v = this.#o.verifier();
    if (v === undefined) return `user "${this.#o.user}" no longer logs in with a JWT`;
    const r = verifyJwt(token, v.keys, {
      subject: this.#o.user,
      nowMs: this.#now(),
      ...(v.audience === undefined ? {} : { audience: v.audience }),
      ...(v.leewayS === undefined ? {} : { leewayS: v.leewayS }),
      ...(v.routeError === undefined ? {} : { routeError: v.routeError }),
    });
    if (!r.ok) return r.reason;
    if (!(r.claims.expiresMs > this.#expiresMs)) {
      return `its exp (${new Date(r.claims.expiresMs).toISOString()} with the leeway) is not ` +
        "later than the session's";
    }
    const had = JSON.stringify(this.#o.claims.routes ?? null);
    if (JSON.stringify(r.claims.routes ?? null) !== had) {
      return `its routes claim differs from the login's (${had}): a renewal keeps the routes`;
    }
    return r.claims;
  }

  #emit(ok: boolean, detail: string): void {
    this.#o.events.emit({
      type: "jwt_renewal",
      session: this.#o.session,
      user: this.#o.user,
      ok,
      expiresMs: this.#expiresMs,
      detail,
    });
  }

  #arm(): void {
    clearTimeout(this.#timer);
    const left = this.#expiresMs - this.#now();
    this.#timer = setTimeout(() => {
      if (this.#now() < this.#expiresMs) return this.#arm();
      this.#timer = undefined;
      this.#o.events.emit({
        type: "limit",
        limit: "jwt.exp",
        user: this.#o.user,
        session: this.#o.session,
        detail: `the login's JWT expired at ${
          new Date(this.#expiresMs).toISOString()
        }; session ended`,
      });
      this.#o.end();
    }, Math.min(MAX_TIMER_MS, Math.max(0, left)));
  }
}

/**
 * When `token` expires (its `exp` claim, ms since the Unix epoch), read
 * without verifying it (the client only schedules by it); undefined when
 * it has no numeric `exp`.
 *
 * @example
 * ```ts
 * import { jwtExpiresMs } from "./jwt_session.ts";
 * jwtExpiresMs("eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjJ9.sig"); // 2000
 * ```
 */
export function jwtExpiresMs(token: string): number | undefined {
  try {
    const payload = JSON.parse(new TextDecoder().decode(fromBase64Url(token.split(".")[1] ?? "")));
    const exp = (payload as { exp?: unknown })?.exp;
    return typeof exp === "number" && Number.isFinite(exp) ? exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** Renewal starts this share of a token's remaining lifetime before its exp... */
const LEAD_SHARE = 1 / 3;
/** ...but no earlier than this before exp... */
export const RENEW_LEAD_MAX_MS = 300_000;
/** ...and no later than this before exp (ms). */
export const RENEW_LEAD_MIN_MS = 1_000;

/** Options for {@linkcode JwtRenewer}. */
export interface JwtRenewerOptions {
  /** The profile's `jwt_file`. */
  file: string;
  /** The token the session logged in with. */
  token: string;
  /** Sends a fresh token on the session (a RENEW frame). */
  send: (token: string) => void;
  log: Logger;
  /** The clock, ms since the Unix epoch; default `Date.now`. */
  now?: () => number;
}

/**
 * The client's side of in-band renewal for one session: from a third of
 * the token's remaining lifetime before its `exp` (between 1 s and 5 min
 * before), it re-reads `jwt_file`, every fifth of that lead (at least
 * 200 ms, at most 30 s), until the file holds a token with a later `exp`;
 * it sends that one and starts over from the new `exp`. It stops at `exp`
 * (the session ends there) or on {@linkcode JwtRenewer.stop}.
 *
 * @example
 * ```ts ignore
 * const renewer = new JwtRenewer({ file, token: link.jwt, send: (t) => session.renew(t), log });
 * session.run().finally(() => renewer.stop());
 * ```
 */
export class JwtRenewer {
  readonly #o: JwtRenewerOptions;
  readonly #now: () => number;
  #expMs: number | undefined;
  #retryMs = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;

  constructor(options: JwtRenewerOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#expMs = jwtExpiresMs(options.token);
    this.#schedule();
  }

  /** No more reads or sends. */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
  }

  /** Waits until the lead before the current exp starts. */
  #schedule(): void {
    const exp = this.#expMs;
    if (this.#stopped || exp === undefined) return;
    const left = exp - this.#now();
    const lead = Math.min(RENEW_LEAD_MAX_MS, Math.max(RENEW_LEAD_MIN_MS, left * LEAD_SHARE));
    this.#retryMs = Math.min(30_000, Math.max(200, lead / 5));
    this.#after(left - lead);
  }

  #after(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#attempt().catch((e) => this.#o.log.warn(`JWT renewal: ${describeError(e)}`));
    }, Math.min(MAX_TIMER_MS, Math.max(0, ms)));
  }

  async #attempt(): Promise<void> {
    const exp = this.#expMs!;
    let token: string | undefined;
    try {
      token = (await Deno.readTextFile(this.#o.file)).trim();
    } catch (e) {
      this.#o.log.warn(`JWT renewal: cannot read jwt_file "${this.#o.file}": ${describeError(e)}`);
    }
    if (this.#stopped) return;
    const next = token === undefined ? undefined : jwtExpiresMs(token);
    if (token !== undefined && next !== undefined && next > exp) {
      try {
        this.#o.send(token);
      } catch (e) {
        this.#o.log.warn(`JWT renewal: cannot send the token: ${describeError(e)}`);
        return;
      }
      this.#o.log.info(
        `sent a fresh JWT from "${this.#o.file}" (exp ${new Date(next).toISOString()})`,
      );
      this.#expMs = next;
      this.#schedule();
      return;
    }
    if (this.#now() + this.#retryMs < exp) this.#after(this.#retryMs);
    else {
      this.#o.log.warn(
        `no fresh JWT in "${this.#o.file}" before exp ${
          new Date(exp).toISOString()
        }: the session ends then`,
      );
    }
  }
}
