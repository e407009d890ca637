/**
 * The `nitrosocks://` share link: a client profile as `user add` writes it,
 * in binary fields (no comments, keys as raw bytes), base64url-encoded, so
 * a typical profile fits in about 300 characters (a QR code at level M).
 * docs/CONFIG.md ("Share links") specifies the format; test vectors are in
 * tests/vectors/share_link_v1.json.
 *
 * The server's private CA is carried either whole (DER) or, when the server
 * sends it in its TLS chain, as its SHA-256 only: the receiver then fetches
 * the chain once and keeps the certificate whose hash matches
 * (`resolveShareLink` in `lib/tunnel/profile_source.ts`).
 *
 * Pure: bytes and strings in, fields out; no I/O.
 *
 * @module
 */
import { ConfigError } from "../errors.ts";
import { fromBase64Url, hash, toBase64Url } from "../crypto/mod.ts";
import { formatHostPort, isHost, parseHostPort } from "../wire/host_port.ts";
import { SCRAM_MAX_ITERATIONS, SCRAM_MIN_ITERATIONS, SCRAM_SALT_BYTES } from "../crypto/scram.ts";
import { USER_NAME_PATTERN } from "./_shared.ts";
import type { ClientProfileFields } from "./client.ts";
import type { TransportName } from "./server.ts";

/** The scheme every share link starts with. */
export const SHARE_SCHEME = "nitrosocks://";
/** The format version this code writes and reads (the body's first byte). */
export const SHARE_LINK_VERSION = 1;
/** Bytes of SHA-256 at the end of the body that catch a damaged or cut link. */
const CHECK_BYTES = 4;
/** Longest body accepted (a profile with a client certificate is about 1.5 KiB). */
export const MAX_SHARE_LINK_BYTES = 16 * 1024;

/** Field tags, in the order they must appear (each at most once). */
export const ShareTag = {
  HOST: 1,
  PORT: 2,
  TRANSPORT: 3,
  PATH: 4,
  SERVER_NAME: 5,
  SERVER_KEY: 6,
  CA_SHA256: 7,
  CA: 8,
  USER: 9,
  KEY: 10,
  TOKEN: 11,
  PASSWORD: 12,
  JWT_FILE: 13,
  JWT: 14,
  TOTP: 15,
  TLS_CLIENT_CERT: 16,
  TLS_CLIENT_KEY: 17,
  SOCKS5_LISTEN: 18,
} as const;

const TRANSPORT_CODES: readonly TransportName[] = ["tls", "tcp", "wss", "ws"];

/** What a share link holds: the profile's fields, and the CA's hash when the CA is fetched. */
export interface SharedProfile {
  /** The fields `formatClientProfile` writes (without `caPem` when `caSha256` is set). */
  profile: ClientProfileFields;
  /** SHA-256 of the CA certificate (DER) the server sends in its TLS chain. */
  caSha256?: Uint8Array;
}

/** Options for {@linkcode encodeShareLink}. */
export interface EncodeShareLinkOptions {
  /**
   * Carry the CA as its SHA-256 instead of whole: only for a server that
   * sends the CA in its TLS chain (`init` makes such servers).
   */
  pinCa?: boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** The DER bodies of the PEM blocks labelled `label`, in order. */
function pemBlocks(pem: string, label: string): Uint8Array[] {
  const re = new RegExp(`-----BEGIN ${label}-----([\\s\\S]*?)-----END ${label}-----`, "g");
  return [...pem.matchAll(re)].map((m) => {
    const b64 = m[1]!.replace(/\s+/g, "");
    return fromBase64Url(b64.replace(/\+/g, "-").replace(/\//g, "_"));
  });
}

/**
 * PEM text of `der` under `label`, 64 characters a line.
 *
 * @example
 * ```ts
 * import { derToPem } from "./share_link.ts";
 * derToPem(new Uint8Array([48, 0]), "CERTIFICATE");
 * // "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n"
 * ```
 */
export function derToPem(der: Uint8Array, label: string): string {
  const b64 = toBase64Url(der).replace(/-/g, "+").replace(/_/g, "/");
  const padded = b64 + "=".repeat((4 - (b64.length % 4)) % 4);
  const lines = padded.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

/** Splits concatenated DER SEQUENCEs; undefined when they do not tile `buf` exactly. */
function splitDer(buf: Uint8Array): Uint8Array[] | undefined {
  const out: Uint8Array[] = [];
  let i = 0;
  while (i < buf.length) {
    if (buf[i] !== 0x30 || i + 2 > buf.length) return undefined;
    let len = buf[i + 1]!;
    let head = 2;
    if (len & 0x80) {
      const n = len & 0x7f;
      if (n < 1 || n > 3 || i + 2 + n > buf.length) return undefined;
      len = 0;
      for (let k = 0; k < n; k++) len = len * 256 + buf[i + 2 + k]!;
      head += n;
    }
    if (i + head + len > buf.length) return undefined;
    out.push(buf.subarray(i, i + head + len));
    i += head + len;
  }
  return out.length === 0 ? undefined : out;
}

/** The SHA-256 of each certificate in a PEM bundle (what a CA pin is compared with). */
export function certificateHashes(pem: string): Uint8Array[] {
  return pemBlocks(pem, "CERTIFICATE").map((der) => hash(der));
}

class FieldWriter {
  #parts: number[] = [];
  field(tag: number, value: Uint8Array): void {
    if (value.length >= 0x8000) {
      throw new RangeError(`Cannot encode share link: field ${tag} is ${value.length} bytes`);
    }
    this.#parts.push(tag);
    if (value.length < 0x80) this.#parts.push(value.length);
    else this.#parts.push(0x80 | (value.length >> 8), value.length & 0xff);
    for (const b of value) this.#parts.push(b);
  }
  text(tag: number, value: string): void {
    this.field(tag, encoder.encode(value));
  }
  finish(): Uint8Array {
    const body = new Uint8Array([SHARE_LINK_VERSION, ...this.#parts]);
    const out = new Uint8Array(body.length + CHECK_BYTES);
    out.set(body);
    out.set(hash(body).subarray(0, CHECK_BYTES), body.length);
    return out;
  }
}

/**
 * Encodes a profile as a `nitrosocks://` link (format version 1). The link
 * is as secret as the profile. Throws `RangeError` for a client key that is
 * not PKCS#8 PEM (the only kind `user add --client-cert` writes).
 *
 * @example
 * ```ts
 * import { decodeShareLink, encodeShareLink } from "./share_link.ts";
 * const link = encodeShareLink({
 *   server: { host: "vpn.example.org", port: 8443 },
 *   serverName: "vpn.example.org",
 *   transport: "tls",
 *   serverKey: new Uint8Array(64),
 *   user: "alice",
 *   key: new Uint8Array(32),
 *   token: new Uint8Array(32),
 * });
 * decodeShareLink(link).profile.user; // "alice"
 * ```
 */
export function encodeShareLink(
  p: ClientProfileFields,
  options: EncodeShareLinkOptions = {},
): string {
  const w = new FieldWriter();
  w.text(ShareTag.HOST, p.server.host);
  w.field(ShareTag.PORT, new Uint8Array([p.server.port >> 8, p.server.port & 0xff]));
  if (p.transport !== "tls") {
    w.field(ShareTag.TRANSPORT, new Uint8Array([TRANSPORT_CODES.indexOf(p.transport)]));
  }
  if (p.path !== undefined) w.text(ShareTag.PATH, p.path);
  if (p.serverName !== p.server.host) w.text(ShareTag.SERVER_NAME, p.serverName);
  w.field(ShareTag.SERVER_KEY, p.serverKey);
  if (p.caPem !== undefined) {
    const certs = pemBlocks(p.caPem, "CERTIFICATE");
    if (options.pinCa && certs.length === 1) w.field(ShareTag.CA_SHA256, hash(certs[0]!));
    else w.field(ShareTag.CA, new Uint8Array(certs.flatMap((c) => [...c])));
  }
  w.text(ShareTag.USER, p.user);
  w.field(ShareTag.KEY, p.key);
  if (p.token !== undefined) w.field(ShareTag.TOKEN, p.token);
  if (p.password !== undefined) {
    const it = p.password.iterations;
    w.field(
      ShareTag.PASSWORD,
      new Uint8Array([
        ...p.password.salt,
        it >>> 24,
        (it >>> 16) & 0xff,
        (it >>> 8) & 0xff,
        it & 0xff,
      ]),
    );
  }
  if (p.jwt !== undefined) {
    if ("file" in p.jwt) w.text(ShareTag.JWT_FILE, p.jwt.file);
    else w.text(ShareTag.JWT, p.jwt.token);
  }
  if (p.totpSecret !== undefined) w.field(ShareTag.TOTP, p.totpSecret);
  if (p.tlsClient !== undefined) {
    const key = pemBlocks(p.tlsClient.keyPem, "PRIVATE KEY");
    if (key.length !== 1) {
      throw new RangeError("Cannot encode share link: the client key is not one PKCS#8 PEM key");
    }
    w.field(
      ShareTag.TLS_CLIENT_CERT,
      new Uint8Array(pemBlocks(p.tlsClient.certPem, "CERTIFICATE").flatMap((c) => [...c])),
    );
    w.field(ShareTag.TLS_CLIENT_KEY, key[0]!);
  }
  if (p.socks5Listen !== undefined) {
    w.text(ShareTag.SOCKS5_LISTEN, formatHostPort(p.socks5Listen.host, p.socks5Listen.port));
  }
  return SHARE_SCHEME + toBase64Url(w.finish());
}

function invalid(detail: string, hint = "copy the whole link, or ask for a new one"): ConfigError {
  return new ConfigError(`Invalid share link: ${detail}`, { hint });
}

/** A field's value as UTF-8 text meeting `check`. */
function textOf(tag: number, v: Uint8Array, what: string, check: (s: string) => boolean): string {
  let s: string;
  try {
    s = decoder.decode(v);
  } catch {
    throw invalid(`field ${tag} (${what}) is not UTF-8`);
  }
  if (!check(s)) throw invalid(`field ${tag} is not ${what}: ${JSON.stringify(s.slice(0, 80))}`);
  return s;
}

function fixed(tag: number, v: Uint8Array, n: number, what: string): Uint8Array {
  if (v.length !== n) throw invalid(`field ${tag} (${what}) is ${v.length} bytes, expected ${n}`);
  return v.slice();
}

/**
 * Decodes a `nitrosocks://` link into the profile it carries. Throws
 * `ConfigError` naming what is wrong: another scheme, characters outside
 * base64url, an unknown version (made by a newer nitrosocks), a damaged or
 * cut link (the check bytes), a field out of order, repeated, unknown or of
 * the wrong size, a required field missing.
 *
 * @example
 * ```ts
 * import { decodeShareLink } from "./share_link.ts";
 * try {
 *   decodeShareLink("nitrosocks://AQ");
 * } catch (e) {
 *   console.log((e as Error).message); // "Invalid share link: too short …"
 * }
 * ```
 */
export function decodeShareLink(link: string): SharedProfile {
  const text = link.trim();
  if (!text.startsWith(SHARE_SCHEME)) {
    throw invalid(`expected it to start with "${SHARE_SCHEME}"`);
  }
  const b64 = text.slice(SHARE_SCHEME.length);
  if (!/^[A-Za-z0-9_-]*$/.test(b64)) {
    const bad = b64.match(/[^A-Za-z0-9_-]/)![0];
    throw invalid(`${JSON.stringify(bad)} is not a base64url character`);
  }
  if (b64.length * 3 / 4 > MAX_SHARE_LINK_BYTES) {
    throw invalid(`longer than ${MAX_SHARE_LINK_BYTES} bytes`);
  }
  if (b64.length % 4 === 1) {
    throw invalid(
      `cut short or damaged: ${b64.length} characters after the scheme is no whole number of bytes`,
    );
  }
  const body = fromBase64Url(b64);
  if (body.length < 1 + CHECK_BYTES) throw invalid(`too short (${body.length} bytes)`);
  const version = body[0]!;
  if (version >= 0x20) {
    throw invalid(
      "an old link that holds the profile's text; this nitrosocks reads format version 1",
      "make a new link with nitrosocks user add, or use the profile file",
    );
  }
  if (version !== SHARE_LINK_VERSION) {
    throw invalid(
      `format version ${version}; this nitrosocks reads version ${SHARE_LINK_VERSION}`,
      version > SHARE_LINK_VERSION
        ? "update nitrosocks"
        : "make a new link with nitrosocks user add",
    );
  }
  const content = body.subarray(0, body.length - CHECK_BYTES);
  const check = body.subarray(body.length - CHECK_BYTES);
  const want = hash(content).subarray(0, CHECK_BYTES);
  if (!check.every((b, i) => b === want[i])) {
    throw invalid("damaged or incomplete (its check bytes do not match)");
  }
  const fields = new Map<number, Uint8Array>();
  let last = 0;
  for (let i = 1; i < content.length;) {
    const tag = content[i]!;
    if (i + 1 >= content.length) throw invalid(`field ${tag} has no length`);
    let len = content[i + 1]!;
    let head = 2;
    if (len & 0x80) {
      if (i + 2 >= content.length) throw invalid(`field ${tag} has a cut length`);
      len = ((len & 0x7f) << 8) | content[i + 2]!;
      head = 3;
    }
    if (tag <= last) {
      throw invalid(
        tag === last ? `field ${tag} repeated` : `field ${tag} after field ${last} (out of order)`,
      );
    }
    if (tag > ShareTag.SOCKS5_LISTEN) {
      throw invalid(`unknown field ${tag}`, "update nitrosocks, or make a new link");
    }
    if (i + head + len > content.length) throw invalid(`field ${tag} runs past the end`);
    fields.set(tag, content.subarray(i + head, i + head + len));
    last = tag;
    i += head + len;
  }
  const need = (tag: number, what: string) => {
    const v = fields.get(tag);
    if (v === undefined) throw invalid(`no field ${tag} (${what})`);
    return v;
  };
  const host = textOf(ShareTag.HOST, need(ShareTag.HOST, "host"), "a host name", isHost);
  const portBytes = fixed(ShareTag.PORT, need(ShareTag.PORT, "port"), 2, "port");
  const port = (portBytes[0]! << 8) | portBytes[1]!;
  if (port === 0) throw invalid("port 0");
  const tCode = fields.get(ShareTag.TRANSPORT);
  let transport: TransportName = "tls";
  if (tCode !== undefined) {
    const t = TRANSPORT_CODES[fixed(ShareTag.TRANSPORT, tCode, 1, "transport")[0]!];
    if (t === undefined) {
      throw invalid(`field ${ShareTag.TRANSPORT}: unknown transport ${tCode[0]}`);
    }
    transport = t;
  }
  const pathBytes = fields.get(ShareTag.PATH);
  const path = pathBytes === undefined
    ? undefined
    : textOf(ShareTag.PATH, pathBytes, "a path", (s) => /^\/[\x21-\x7e]*$/.test(s));
  if ((transport === "ws" || transport === "wss") !== (path !== undefined)) {
    throw invalid(`a path goes with ws and wss only (transport ${transport})`);
  }
  const nameBytes = fields.get(ShareTag.SERVER_NAME);
  const serverName = nameBytes === undefined
    ? host
    : textOf(ShareTag.SERVER_NAME, nameBytes, "a DNS name", isHost);
  const serverKey = fixed(
    ShareTag.SERVER_KEY,
    need(ShareTag.SERVER_KEY, "server key"),
    64,
    "server key",
  );
  const pin = fields.get(ShareTag.CA_SHA256);
  const caDer = fields.get(ShareTag.CA);
  if (pin !== undefined && caDer !== undefined) throw invalid("both a CA and a CA hash");
  let caPem: string | undefined;
  if (caDer !== undefined) {
    const certs = splitDer(caDer);
    if (certs === undefined) throw invalid(`field ${ShareTag.CA} is not DER certificates`);
    caPem = certs.map((c) => derToPem(c, "CERTIFICATE")).join("");
  }
  const user = textOf(
    ShareTag.USER,
    need(ShareTag.USER, "user"),
    "a user name",
    (s) => USER_NAME_PATTERN.test(s),
  );
  const key = fixed(ShareTag.KEY, need(ShareTag.KEY, "key"), 32, "key");
  const token = fields.get(ShareTag.TOKEN);
  const pw = fields.get(ShareTag.PASSWORD);
  let password: ClientProfileFields["password"];
  if (pw !== undefined) {
    fixed(ShareTag.PASSWORD, pw, SCRAM_SALT_BYTES + 4, "password salt and iterations");
    const v = new DataView(pw.buffer, pw.byteOffset + SCRAM_SALT_BYTES, 4).getUint32(0);
    if (v < SCRAM_MIN_ITERATIONS || v > SCRAM_MAX_ITERATIONS) {
      throw invalid(
        `${v} password iterations, outside ${SCRAM_MIN_ITERATIONS}..${SCRAM_MAX_ITERATIONS}`,
      );
    }
    password = { salt: pw.slice(0, SCRAM_SALT_BYTES), iterations: v };
  }
  const jwtFile = fields.get(ShareTag.JWT_FILE);
  const jwtToken = fields.get(ShareTag.JWT);
  const jwt = jwtFile !== undefined
    ? { file: textOf(ShareTag.JWT_FILE, jwtFile, "a file name", (s) => /^[^\0\n]{1,255}$/.test(s)) }
    : jwtToken !== undefined
    ? {
      token: textOf(ShareTag.JWT, jwtToken, "a JWT", (s) =>
        /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(s)),
    }
    : undefined;
  const factors = [token, pw, jwtFile, jwtToken].filter((f) => f !== undefined).length;
  if (factors !== 1) {
    throw invalid(
      `${
        factors === 0 ? "no" : factors
      } second factors (token, password, jwt, jwt_file); a profile has exactly one`,
    );
  }
  const totp = fields.get(ShareTag.TOTP);
  if (totp !== undefined && (totp.length < 10 || totp.length > 40)) {
    throw invalid(`field ${ShareTag.TOTP} (TOTP secret) is ${totp.length} bytes, expected 10..40`);
  }
  const cCert = fields.get(ShareTag.TLS_CLIENT_CERT);
  const cKey = fields.get(ShareTag.TLS_CLIENT_KEY);
  if ((cCert === undefined) !== (cKey === undefined)) {
    throw invalid("a client certificate without its key, or a key without its certificate");
  }
  let tlsClient: ClientProfileFields["tlsClient"];
  if (cCert !== undefined && cKey !== undefined) {
    const certs = splitDer(cCert);
    if (certs === undefined || splitDer(cKey)?.length !== 1) {
      throw invalid("the client certificate or key is not DER");
    }
    tlsClient = {
      certPem: certs.map((c) => derToPem(c, "CERTIFICATE")).join(""),
      keyPem: derToPem(cKey, "PRIVATE KEY"),
    };
  }
  const listenBytes = fields.get(ShareTag.SOCKS5_LISTEN);
  const socks5Listen = listenBytes === undefined ? undefined : parseHostPort(
    textOf(ShareTag.SOCKS5_LISTEN, listenBytes, "HOST:PORT", (s) => parseHostPort(s) !== undefined),
  );
  const profile: ClientProfileFields = {
    server: { host, port },
    serverName,
    transport,
    ...(path === undefined ? {} : { path }),
    serverKey,
    ...(caPem === undefined ? {} : { caPem }),
    user,
    key,
    ...(token === undefined ? {} : { token: fixed(ShareTag.TOKEN, token, 32, "token") }),
    ...(password === undefined ? {} : { password }),
    ...(jwt === undefined ? {} : { jwt }),
    ...(totp === undefined ? {} : { totpSecret: totp.slice() }),
    ...(tlsClient === undefined ? {} : { tlsClient }),
    ...(socks5Listen === undefined ? {} : { socks5Listen }),
  };
  return {
    profile,
    ...(pin === undefined ? {} : { caSha256: fixed(ShareTag.CA_SHA256, pin, 32, "CA SHA-256") }),
  };
}
