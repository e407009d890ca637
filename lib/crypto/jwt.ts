/**
 * JSON Web Tokens (RFC 7519) in compact JWS form (RFC 7515), for logins:
 * HS256 (RFC 7518 section 3.2) and EdDSA over Ed25519 (RFC 8037). The
 * algorithm a token names only selects which of the server's keys of that
 * kind may verify it: an HS256 token is checked against HS256 secrets only,
 * an EdDSA token against Ed25519 public keys only, so neither `alg: none`
 * nor algorithm confusion (an Ed25519 public key used as an HMAC secret)
 * can verify. Claims: `sub` must name the user, `exp` is required, `nbf`
 * and `aud` are checked when present or configured. How the handshake
 * carries and binds a token: docs/PROTOCOL.md part 2 section 14.
 *
 * @module
 */
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { ed25519Sign, ed25519Verify } from "./keys.ts";
import { ctEqual, fromBase64Url, toBase64Url } from "./mod.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Longest token accepted (bytes of the compact form). */
export const JWT_MAX_BYTES = 2048;
/** Shortest HS256 secret accepted (RFC 7518 section 3.2: at least the hash size). */
export const JWT_MIN_SECRET_BYTES = 32;

/** Keys a token may be verified with. */
export interface JwtKeys {
  /** HS256 secrets (each at least 32 bytes). */
  hs256?: readonly Uint8Array[];
  /** Ed25519 public keys (32 bytes each) for EdDSA. */
  ed25519?: readonly Uint8Array[];
}

/** What is checked besides the signature. */
export interface JwtCheck {
  /** The user the token must name in `sub`. */
  subject: string;
  /** Now, ms since the Unix epoch. */
  nowMs: number;
  /** When set, `aud` (a string or a list) must contain it. */
  audience?: string;
  /** Clock leeway for `exp` and `nbf` (s); default 0. */
  leewayS?: number;
  /**
   * Why a `routes` claim pattern is not a route (the route grammar's
   * error), or undefined when it is one. Without it any string is kept.
   */
  routeError?: (pattern: string) => string | undefined;
}

/**
 * Latest NumericDate accepted for `exp`, `nbf` and `iat` (s):
 * 9999-12-31T23:59:59Z. Later values, like negative ones, are refused, so
 * every accepted date is a valid `Date` and its ms fit a safe integer.
 */
export const JWT_MAX_NUMERIC_DATE = 253_402_300_799;
/** Most patterns in a `routes` claim. */
export const JWT_MAX_ROUTES = 256;

/** The claims a login uses. */
export interface JwtClaims {
  /** `sub`. */
  subject: string;
  /** When the token stops being accepted: `exp` plus the leeway, as ms since the Unix epoch. */
  expiresMs: number;
  /** `routes`: route patterns that narrow the user's routes for this session, when present. */
  routes?: string[];
}

/** The verdict: the claims, or why not (for the server log only). */
export type JwtResult = { ok: true; claims: JwtClaims } | { ok: false; reason: string };

function fail(reason: string): JwtResult {
  return { ok: false, reason };
}

function parsePart(part: string, what: string): Record<string, unknown> | string {
  let json: unknown;
  try {
    json = JSON.parse(decoder.decode(fromBase64Url(part)));
  } catch {
    return `the ${what} is not base64url JSON`;
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    return `the ${what} is not a JSON object`;
  }
  return json as Record<string, unknown>;
}

/** A claim value for the log: JSON, cut to 60 characters. */
function describe(v: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(v) ?? String(v);
  } catch {
    text = String(v);
  }
  return text.length > 60 ? `${text.slice(0, 60)}…` : text;
}

/**
 * A NumericDate claim (RFC 7519 section 2: seconds since the epoch, a
 * fraction allowed) in 0..{@linkcode JWT_MAX_NUMERIC_DATE}; undefined when
 * absent, the reason (a string) when it is not such a number.
 */
function numericDate(claims: Record<string, unknown>, name: string): number | undefined | string {
  const v = claims[name];
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v)) {
    return `${name} ${describe(v)} is not a NumericDate (a number of seconds)`;
  }
  if (v < 0 || v > JWT_MAX_NUMERIC_DATE) {
    return `${name} ${v} is outside 0..${JWT_MAX_NUMERIC_DATE} (1970 to 9999)`;
  }
  return v;
}

/**
 * Verifies a compact JWS token and its claims. Every key of the token's
 * kind is tried (each comparison in constant time); never throws for token
 * input.
 *
 * @example
 * ```ts
 * import { signJwt, verifyJwt } from "./jwt.ts";
 * const secret = new Uint8Array(32).fill(7);
 * const token = signJwt({ alg: "HS256", secret }, { sub: "alice", exp: 2_000_000_000 });
 * const r = verifyJwt(token, { hs256: [secret] }, { subject: "alice", nowMs: 1_900_000_000_000 });
 * console.log(r.ok); // true
 * ```
 */
export function verifyJwt(token: string, keys: JwtKeys, check: JwtCheck): JwtResult {
  if (token.length > JWT_MAX_BYTES) return fail(`the token is longer than ${JWT_MAX_BYTES} bytes`);
  const parts = token.split(".");
  if (parts.length !== 3) return fail("the token is not three dot-separated parts");
  const [h, p, s] = parts as [string, string, string];
  const header = parsePart(h, "header");
  if (typeof header === "string") return fail(header);
  if ("crit" in header) return fail("the header has crit parameters");
  let sig: Uint8Array;
  try {
    sig = fromBase64Url(s);
  } catch {
    return fail("the signature is not base64url");
  }
  const signed = encoder.encode(`${h}.${p}`);
  let verified = false;
  if (header.alg === "HS256") {
    const secrets = keys.hs256 ?? [];
    if (secrets.length === 0) return fail("HS256 token, but no HS256 secret is configured");
    for (const k of secrets) {
      if (k.length < JWT_MIN_SECRET_BYTES) continue;
      if (ctEqual(hmac(sha256, k, signed), sig)) verified = true;
    }
  } else if (header.alg === "EdDSA") {
    const pubs = keys.ed25519 ?? [];
    if (pubs.length === 0) return fail("EdDSA token, but no Ed25519 public key is configured");
    if (header.crv !== undefined && header.crv !== "Ed25519") {
      return fail(`EdDSA curve ${JSON.stringify(header.crv)} is not Ed25519`);
    }
    for (const k of pubs) {
      if (sig.length === 64 && k.length === 32 && ed25519Verify(k, signed, sig)) verified = true;
    }
  } else {
    return fail(`algorithm ${JSON.stringify(header.alg)} is not HS256 or EdDSA`);
  }
  if (!verified) return fail(`the ${header.alg} signature does not verify with any key`);
  const claims = parsePart(p, "payload");
  if (typeof claims === "string") return fail(claims);
  const leewayMs = (check.leewayS ?? 0) * 1000;
  if (claims.sub !== check.subject) {
    return fail(`sub ${describe(claims.sub)} is not the user`);
  }
  const exp = numericDate(claims, "exp");
  if (typeof exp === "string") return fail(exp);
  if (exp === undefined) return fail("exp is missing");
  const nbf = numericDate(claims, "nbf");
  if (typeof nbf === "string") return fail(nbf);
  const iat = numericDate(claims, "iat");
  if (typeof iat === "string") return fail(iat);
  if (!(check.nowMs < exp * 1000 + leewayMs)) {
    return fail(`expired at ${new Date(exp * 1000).toISOString()}`);
  }
  if (nbf !== undefined && nbf * 1000 - leewayMs > check.nowMs) {
    return fail(`not valid before ${new Date(nbf * 1000).toISOString()}`);
  }
  if (check.audience !== undefined) {
    const aud = claims.aud;
    const list = typeof aud === "string" ? [aud] : Array.isArray(aud) ? aud : [];
    if (!list.includes(check.audience)) return fail(`aud does not include the server's audience`);
  }
  const out: JwtClaims = { subject: check.subject, expiresMs: exp * 1000 + leewayMs };
  const routes = claims.routes;
  if (routes !== undefined) {
    if (
      !Array.isArray(routes) || routes.length > JWT_MAX_ROUTES ||
      !routes.every((r) => typeof r === "string" && r.length <= 300)
    ) {
      return fail("routes is not a list of route patterns");
    }
    for (const r of routes as string[]) {
      const why = check.routeError?.(r);
      if (why !== undefined) return fail(`routes claim pattern ${describe(r)} is refused: ${why}`);
    }
    out.routes = routes as string[];
  }
  return { ok: true, claims: out };
}

/** A signing key for {@linkcode signJwt}. */
export type JwtSigningKey =
  | { alg: "HS256"; secret: Uint8Array }
  | { alg: "EdDSA"; seed: Uint8Array };

/**
 * Signs claims as a compact JWS token (for `nitrosocks user token` and
 * tests).
 *
 * @example
 * ```ts
 * import { signJwt } from "./jwt.ts";
 * const token = signJwt({ alg: "EdDSA", seed: new Uint8Array(32) }, { sub: "bob", exp: 2e9 });
 * console.log(token.split(".").length); // 3
 * ```
 */
export function signJwt(key: JwtSigningKey, claims: Record<string, unknown>): string {
  const header = key.alg === "HS256" ? { alg: "HS256", typ: "JWT" } : {
    alg: "EdDSA",
    crv: "Ed25519",
    typ: "JWT",
  };
  const h = toBase64Url(encoder.encode(JSON.stringify(header)));
  const p = toBase64Url(encoder.encode(JSON.stringify(claims)));
  const signed = encoder.encode(`${h}.${p}`);
  const sig = key.alg === "HS256"
    ? hmac(sha256, key.secret, signed)
    : ed25519Sign(key.seed, signed);
  return `${h}.${p}.${toBase64Url(sig)}`;
}
