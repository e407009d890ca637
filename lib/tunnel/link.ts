/**
 * One link of a client session: dial an endpoint and run the handshake (a
 * full login, or a resumption) through the shared driver (`_drive.ts`). A
 * failure is a {@linkcode TunnelError} whose message says what to check.
 *
 * @module
 */
import { TOTP_PERIOD_SECONDS, TOTP_WINDOW_STEPS } from "../crypto/totp.ts";
import type { ClientConfig, Endpoint } from "../config/mod.ts";
import { saltedPassword, scramClientKeys } from "../crypto/scram.ts";
import {
  type ClientCredentials,
  ClientHandshake,
  type ClientResume,
  COOKIE_SECRET_MS,
  isGoawayHeader,
  type PasswordKeys,
  ServerPrefaceSkipper,
  type SessionSecrets,
} from "../handshake/mod.ts";
import { createRecordOpener, createRecordSealer, tunnelPadding } from "../record/mod.ts";
import { ProtocolError } from "../errors.ts";
import { getTransport } from "../transport/mod.ts";
import { writeAll } from "../transport/types.ts";
import { describeError } from "../observe/mod.ts";
import { concat } from "../wire/bytes.ts";
import { drive } from "./_drive.ts";
import { TimedReader } from "./reader.ts";
import { linkIdOf, type LinkParams } from "./session.ts";

/** The whole handshake must finish within this. */
export const HANDSHAKE_DEADLINE_MS = 15_000;

/** SCRAM keys per profile, derived once (PBKDF2 is deliberately slow). */
const passwordKeys = new WeakMap<ClientConfig, Promise<PasswordKeys>>();

/**
 * The handshake credentials of a profile: the static key and its second
 * factor. A password is turned into its SCRAM-SHA-256 keys once per profile
 * object; the password itself is not kept beyond the profile.
 */
export async function credentialsOf(config: ClientConfig): Promise<ClientCredentials> {
  const credentials: ClientCredentials = { userId: config.user, clientKey: config.key };
  if (config.totpSecret !== undefined) credentials.totpSecret = config.totpSecret;
  const jwt = config.jwt;
  if (jwt !== undefined) {
    credentials.jwt = "token" in jwt ? jwt.token : await readJwtFile(config.user, jwt.file);
    return credentials;
  }
  const pw = config.password;
  if (pw === undefined) {
    if (config.token !== undefined) credentials.token = config.token;
    return credentials;
  }
  const value = pw.value;
  if (value === undefined) {
    throw new TunnelError(
      `Cannot log in as "${config.user}": the profile asks for a password and none was given: ` +
        "run the client in a terminal to be asked for it, pipe it on standard input, " +
        "or add password.value to the profile",
    );
  }
  let keys = passwordKeys.get(config);
  if (keys === undefined) {
    keys = saltedPassword(value, pw.salt, pw.iterations).then((salted) => {
      const k = scramClientKeys(salted);
      salted.fill(0);
      return k;
    });
    passwordKeys.set(config, keys);
  }
  credentials.password = await keys;
  return credentials;
}

/** The token in `file` (read at every login, so a renewed token is picked up). */
async function readJwtFile(user: string, file: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new TunnelError(
      `Cannot log in as "${user}": cannot read jwt_file "${file}": ${describeError(e)}: ` +
        "check the path in the profile",
    );
  }
  const token = text.trim();
  if (!/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token)) {
    throw new TunnelError(
      `Cannot log in as "${user}": jwt_file "${file}" does not hold a JWT ` +
        "(header.payload.signature): write the token alone in it",
    );
  }
  return token;
}

/**
 * Raised when the tunnel cannot be established; the message says what to
 * check (server down, wrong key, login refused, interception).
 *
 * @example
 * ```ts ignore
 * try {
 *   await connect("alice.yml");
 * } catch (e) {
 *   if (e instanceof TunnelError) console.error(e.message);
 * }
 * ```
 */
export class TunnelError extends Error {
  /** "session_gone": the server no longer holds the session we tried to resume. */
  readonly kind: "session_gone" | undefined;
  /** `message` says what to check; `kind` marks a session the server no longer holds. */
  constructor(message: string, options?: ErrorOptions & { kind?: "session_gone" }) {
    super(message, options);
    this.name = "TunnelError";
    this.kind = options?.kind;
  }
}

/**
 * Turns a handshake failure into a message that says what to check. The
 * server's real reason is only in its own log; the client can tell apart:
 * a server that is not the pinned one, a server that answered as a web site
 * (it did not accept our first message: wrong server key, clock off, or not
 * NitroSocks), and a login refused after our credentials.
 */
function explainFailure(e: unknown, where: string, totp: boolean): TunnelError {
  const msg = e instanceof Error ? e.message : String(e);
  if (e instanceof ProtocolError && e.code === "AUTH_FAILED") {
    switch (e.authFailure) {
      case "decoy":
        return new TunnelError(
          `The server at ${where} answered as a web server, so it did not accept our first message: ` +
            `the profile's server key may be out of date, this machine's clock may be off by minutes, ` +
            `or the address is not a NitroSocks server`,
          { cause: e },
        );
      case "resume_refused":
        return new TunnelError(`The server at ${where} no longer has this session`, {
          cause: e,
          kind: "session_gone",
        });
      case "login_refused":
        return new TunnelError(
          `The server at ${where} refused the login: check the profile's user id, key, token and TOTP ` +
            `secret (ask the server's admin for a fresh profile) and this machine's clock` +
            (totp
              ? ": this profile sends TOTP codes, which the server accepts only within " +
                `${TOTP_WINDOW_STEPS * TOTP_PERIOD_SECONDS} s of its clock, so a clock off here ` +
                "or on the server is the likely cause"
              : ""),
          { cause: e },
        );
      default:
        return new TunnelError(
          `The server at ${where} is not the server in your profile: its identity does not match the pinned ` +
            `key (a different server or an interceptor is answering); no credentials were sent`,
          { cause: e },
        );
    }
  }
  if (e instanceof ProtocolError && e.code === "CLOSED") {
    return new TunnelError(
      `The server at ${where} closed the connection without completing the handshake: it may not be a ` +
        `NitroSocks server, or it may be overloaded (${msg})`,
      { cause: e },
    );
  }
  return new TunnelError(
    `The server at ${where} did not answer as a NitroSocks server (${msg}): the profile's server key may ` +
      `be out of date or the address may be wrong`,
    { cause: e },
  );
}

/** A new authenticated connection, before it is joined to a session. */
export interface NewLink {
  link: LinkParams;
  secrets: SessionSecrets;
  /** The JWT a full login sent (a JWT user's), for renewing it in-band later. */
  jwt?: string;
}

/**
 * Dials one endpoint and runs the handshake (a full login, or a resumption
 * when `resume` is given). Throws `TunnelError` saying what to check.
 */
export async function connectLink(
  config: ClientConfig,
  endpoint: Endpoint,
  resume?: ClientResume,
): Promise<NewLink> {
  const where = `${endpoint.server.host}:${endpoint.server.port}`;
  const kept = cookies.get(where);
  const first = await attemptLink(
    config,
    endpoint,
    where,
    resume,
    kept !== undefined && kept.until > Date.now() ? kept.cookie : undefined,
  );
  if ("link" in first) return first;
  // The server is under load and sent a cookie (PROTOCOL.md part 2 section 15): again, with it.
  if (cookies.size >= MAX_KEPT_COOKIES) cookies.clear();
  cookies.set(where, { cookie: first.cookie, until: Date.now() + COOKIE_SECRET_MS });
  const again = await attemptLink(config, endpoint, where, resume, first.cookie);
  if ("link" in again) return again;
  throw new TunnelError(
    `The server at ${where} asked for a cookie twice in a row: it is overloaded or its clock ` +
      `jumped; try again later`,
  );
}

/** Cookies from servers under load, by endpoint, until their secret may have changed. */
const cookies = new Map<string, { cookie: Uint8Array; until: number }>();
/** The most endpoints whose cookies are kept. */
const MAX_KEPT_COOKIES = 64;

/** One connection and handshake; a cookie step returns the cookie instead of a link. */
async function attemptLink(
  config: ClientConfig,
  endpoint: Endpoint,
  where: string,
  resume: ClientResume | undefined,
  cookie: Uint8Array | undefined,
): Promise<NewLink | { cookie: Uint8Array }> {
  let conn;
  try {
    conn = await getTransport(endpoint.transport).dial({
      hostname: endpoint.server.host,
      port: endpoint.server.port,
      serverName: endpoint.serverName,
      ...(endpoint.caPem === undefined ? {} : { caPems: [endpoint.caPem] }),
      ...(endpoint.path === undefined ? {} : { path: endpoint.path }),
      ...(config.tlsClient === undefined
        ? {}
        : { clientCertPem: config.tlsClient.certPem, clientKeyPem: config.tlsClient.keyPem }),
      timeoutMs: config.limits.connectTimeoutS * 1000,
    });
  } catch (e) {
    const msg = describeError(e);
    throw new TunnelError(
      /does not speak TLS/.test(msg)
        ? `Cannot reach the server at ${where}: ${msg}: check the profile's server address and port ` +
          `(and that the server's transport is tls)`
        : /TLS|certificate/i.test(msg)
        ? `Cannot reach the server at ${where}: ${msg}: check the profile's ca and server_name, or pass ` +
          `an inspecting proxy's CA with --ca`
        : `Cannot reach the server at ${where}: ${msg}: check that the NitroSocks server is running and ` +
          `that the profile's server address and port are right`,
      { cause: e },
    );
  }
  try {
    const credentials = await credentialsOf(config);
    const hs = new ClientHandshake({
      serverPublicKey: config.serverKey,
      credentials,
      kex: config.kex,
      aead: config.aead,
      recordPadding: config.padding,
      now: Date.now,
      ...(resume === undefined ? {} : { resume }),
      ...(cookie === undefined ? {} : { cookie }),
    });
    await writeAll(conn, hs.hello());
    // A connection silent for dead_after is dead, during the handshake as after it.
    const silentMs = config.session.deadAfterS * 1000;
    // Over ALPN h2 the server sends an HTTP/2 server preface first (PROTOCOL.md part 2 6.2.2);
    // it is dropped wherever it comes (a front may have chosen the ALPN), and never required.
    const preface = new ServerPrefaceSkipper();
    // After a preface, an HTTP/2 GOAWAY is a web server's refusal of our Hello: the decoy's.
    // Its header is looked for in the first 9 bytes after the preface, however they are read.
    let afterPreface: Uint8Array | undefined;
    let goaway = false;
    const explain = (e: unknown) =>
      goaway
        ? explainFailure(
          new ProtocolError("AUTH_FAILED", "answered with an HTTP/2 GOAWAY", {
            cause: e,
            authFailure: "decoy",
          }),
          where,
          false,
        )
        : explainFailure(e, where, config.totpSecret !== undefined);
    const push = (chunk: Uint8Array) => {
      try {
        if (!preface.done) {
          chunk = preface.push(chunk);
          if (!preface.done) return { type: "need_more" as const };
          if (preface.skipped) afterPreface = new Uint8Array(0);
        }
        if (afterPreface !== undefined && afterPreface.length < 9) {
          afterPreface = concat([afterPreface, chunk.subarray(0, 9 - afterPreface.length)]);
          goaway = isGoawayHeader(afterPreface);
        }
        return hs.push(chunk);
      } catch (e) {
        throw explain(e);
      }
    };
    const r = await drive(conn, new TimedReader(conn), push, {
      deadlineMs: HANDSHAKE_DEADLINE_MS,
      idleMs: silentMs,
    });
    if ("stop" in r) {
      if (r.stop === "idle") {
        throw new TunnelError(
          `The server at ${where} sent nothing for ${silentMs / 1000} s (session.dead_after) ` +
            `during the handshake: the connection stalled`,
        );
      }
      if (r.stop === "timeout") {
        throw new TunnelError(
          `The server at ${where} did not complete the handshake within ${
            HANDSHAKE_DEADLINE_MS / 1000
          } s: ` +
            `check that it runs NitroSocks and that the profile's server key is current`,
        );
      }
      // Closed, or a read error: a TLS connection cut without close_notify is an end of stream here.
      // Fewer than 9 bytes the skipper could not judge yet are the handshake's.
      if (!preface.done && preface.held.length > 0) {
        try {
          hs.push(preface.held);
        } catch (e) {
          throw explain(e);
        }
      }
      throw explain(hs.closed());
    }
    const step = r.step;
    if (step.type === "cookie") {
      conn.close();
      return { cookie: step.cookie };
    }
    await writeAll(conn, step.send);
    const secrets = step.secrets;
    const sealer = await createRecordSealer(
      secrets.aead,
      secrets.clientToServer,
      { padding: tunnelPadding(secrets.recordPadding, "client") },
    );
    const opener = await createRecordOpener(secrets.aead, secrets.serverToClient);
    return {
      link: {
        conn,
        sealer,
        opener,
        initial: step.rest,
        resumed: secrets.resumed,
        label: where,
        linkId: linkIdOf(secrets.transcriptHash),
      },
      secrets,
      ...(credentials.jwt === undefined || resume !== undefined ? {} : { jwt: credentials.jwt }),
    };
  } catch (e) {
    try {
      conn.close();
    } catch {
      // already closed
    }
    throw e;
  }
}
