/**
 * The observer that turns a server's or a client's events into log lines:
 * the one place where logins, refusals, sessions, resumptions (and refused
 * ones), paths (and avoided ones) and stream decisions are worded for the
 * log.
 *
 * A server's lines about a connection carry `conn N`, and its lines about a
 * session carry `conn N USER` of the connection that started the session;
 * a client's lines carry no prefix of their own.
 *
 * @module
 */
import type { EventHub, TunnelEvent } from "./events.ts";
import type { Logger } from "./log.ts";

/** Which side's wording to use. */
export type LogSide = "server" | "client";

/** What the observer remembers of a server session: where its lines go. */
interface SessionLogs {
  /** `conn N`: the connection that started the session. */
  conn: Logger;
  /** `conn N USER`. */
  session: Logger;
}

/**
 * Subscribes an observer that logs `hub`'s events to `log`; returns the
 * function that unsubscribes it. Stream closes and byte counts are not
 * logged (they are for metrics; `session_end` logs the totals). Logins,
 * refusals, limit hits and kicks are one line each: the audit trail.
 *
 * @example
 * ```ts
 * import { EventHub } from "./events.ts";
 * import { createLogger } from "./log.ts";
 * import { logEvents } from "./log_events.ts";
 * const lines: string[] = [];
 * const hub = new EventHub();
 * const stop = logEvents(hub, createLogger("info", "client", (l) => lines.push(l)), "client");
 * hub.emit({ type: "resume", session: 1, user: "alice", via: "127.0.0.1:8443", afterMs: 12 });
 * stop();
 * if (!lines[0]?.endsWith("session resumed via 127.0.0.1:8443 after 12 ms")) throw new Error();
 * ```
 */
export function logEvents(hub: EventHub, log: Logger, side: LogSide): () => void {
  const sessions = new Map<number, SessionLogs>();
  const connLog = (conn: number | undefined) =>
    conn === undefined ? log : log.child(`conn ${conn}`);
  const sessionLog = (session: number) => sessions.get(session)?.session ?? log;
  const observe = (e: TunnelEvent): void => {
    switch (e.type) {
      case "listening": {
        const where = `${e.addr.hostname}:${e.addr.port}`;
        if (e.kind === "tunnel") {
          log.info(
            `listening on ${e.transport === undefined ? "" : `${e.transport}://`}${where}${
              e.path ?? ""
            }${e.proxyProtocol ? " (PROXY v2 header first)" : ""}`,
          );
        } else if (e.kind === "http") log.child("http").info(`HTTP CONNECT listening on ${where}`);
        else if (e.kind === "relay") log.child("relay").info(`relay listening on ${where}`);
        else if (e.kind === "forward") {
          log.child("forward").info(
            `${e.protocol} ${where} forwarded to ${e.to} through the tunnel`,
          );
        } else if (e.kind === "dns") {
          log.child("dns").info(
            `DNS (${e.protocol}) on ${where}, asking ${e.to} through the tunnel`,
          );
        } else if (e.kind === "admin") {
          const url = e.addr.hostname.includes(":")
            ? `http://[${e.addr.hostname}]:${e.addr.port}`
            : `http://${where}`;
          log.child("admin").info(`admin listening on ${url}`);
        } else log.child(e.kind).info(`SOCKS5 listening on ${where}`);
        return;
      }
      case "login": {
        if (e.conn !== undefined && !sessions.has(e.session)) {
          const conn = connLog(e.conn);
          sessions.set(e.session, { conn, session: conn.child(e.user) });
        }
        if (!e.resumed) {
          connLog(e.conn).info(`user "${e.user}" connected from ${e.remote} (${e.kex}, ${e.aead})`);
        }
        return;
      }
      case "refusal": {
        const l = connLog(e.conn);
        switch (e.reason) {
          case "probe":
            l.info(`probe from ${e.remote}: ${e.detail}; handing to fallback`);
            return;
          case "auth_failed":
            l.warn(`authentication failed from ${e.remote}: ${e.detail}`);
            return;
          case "rate_limited":
            l.info(`${e.remote} over limits.per_ip: ${e.detail}; handing to fallback`);
            return;
          case "timeout":
            l.info(`handshake with ${e.remote} timed out`);
            return;
          case "cookie":
            l.debug(`cookie reply to ${e.remote}: ${e.detail}`);
            return;
          case "evicted":
            l.info(`closed ${e.remote} before a login: ${e.detail}`);
            return;
          case "full":
            l.debug(`refused ${e.remote} at once: ${e.detail}`);
            return;
          case "closed":
            l.info(`handshake with ${e.remote} closed`);
            return;
          default:
            l.warn(`connection error: ${e.detail}`);
            return;
        }
      }
      case "session_start":
        if (side === "client") {
          const algs = e.kex === undefined ? "" : ` (${e.kex}, ${e.aead ?? "?"})`;
          log.info(`tunnel up to ${e.peer} as "${e.user}"${algs}`);
        } else if (e.restarted === true) {
          (sessions.get(e.session)?.conn ?? log).info(
            `user "${e.user}" resumed a session this server does not hold: starting it afresh`,
          );
        }
        return;
      case "session_end":
        sessionLog(e.session)[e.graceful ? "info" : "warn"](`session ended: ${e.reason}`);
        sessions.delete(e.session);
        return;
      case "resume":
        if (side === "client") {
          const after = e.afterMs === undefined ? "" : ` after ${e.afterMs} ms`;
          log.info(`session resumed via ${e.via}${after}`);
        } else {
          connLog(e.conn).info(`user "${e.user}" resumed their session from ${e.via}`);
        }
        return;
      case "resume_refused":
        if (e.next === "previous") {
          log.info("the server refused the latest resumption secret: trying the one before it");
        } else {
          log.warn(
            `The server at ${e.endpoint} no longer has this session: its streams are lost; ` +
              "the next request opens a new session",
          );
        }
        return;
      case "path_change":
        if (e.from === undefined) log.debug(`using endpoint ${e.to}`);
        else log.info(`moved from endpoint ${e.from} to ${e.to} (${e.reason})`);
        return;
      case "path_avoided":
        log.warn(`endpoint ${e.endpoint} ${e.reason}: avoiding it`);
        return;
      case "link_down": {
        const tampering = e.tampered ? " (tampering detected)" : "";
        sessionLog(e.session).info(`link to ${e.peer ?? "peer"} down: ${e.reason}${tampering}`);
        if (side === "client") log.warn(`connection lost: ${e.reason}; resuming`);
        return;
      }
      case "connect_failed":
        log[e.next === undefined ? "debug" : "warn"](`endpoint ${e.endpoint}: ${e.error}`);
        return;
      case "stream_open":
        sessionLog(e.session).debug(`stream ${e.stream}: connected to ${e.target}`);
        return;
      case "stream_refused":
        sessionLog(e.session).info(`stream ${e.stream}: ${e.reason}`);
        return;
      case "udp_open":
        sessionLog(e.session).debug(
          `udp association ${e.stream} open${e.relay === undefined ? "" : ` on ${e.relay}`}`,
        );
        return;
      case "udp_refused":
        sessionLog(e.session).info(`udp association ${e.stream}: ${e.reason}`);
        return;
      case "udp_close":
        sessionLog(e.session).debug(
          `udp association ${e.stream} closed (${e.reason}): ${e.out} out, ${e.in} in, ${e.dropped} dropped`,
        );
        return;
      case "kick": {
        const n = e.sessions === 1 ? "1 session" : `${e.sessions} sessions`;
        log.info(`user "${e.user}" kicked by ${e.by}: ${n} ended`);
        return;
      }
      case "certificate":
        if (e.action === "reloaded") log.info(`TLS certificate ${e.file} reloaded: ${e.detail}`);
        else log.error(`TLS certificate ${e.file} not reloaded, keeping the previous: ${e.detail}`);
        return;
      case "limit": {
        const l = e.session === undefined ? log : sessionLog(e.session);
        const who = e.user === undefined || e.session !== undefined ? "" : ` user "${e.user}"`;
        l.warn(`limit ${e.limit}${who}: ${e.detail}`);
        return;
      }
      case "rekey":
        sessionLog(e.session).debug("re-keyed with fresh X25519");
        return;
      case "jwt_renewal": {
        const at = new Date(e.expiresMs).toISOString();
        if (e.ok) sessionLog(e.session).info(`JWT renewed in-band: ${e.detail}; ends at ${at}`);
        else sessionLog(e.session).warn(`JWT renewal refused: ${e.detail}; still ends at ${at}`);
        return;
      }
      case "tunnel_idle":
        sessionLog(e.session).info(
          `no stream for ${e.idleMs / 1000} s (limits.idle_timeout): closing the idle tunnel`,
        );
        return;
      case "release":
        // NOTICE 1 (NO_RESPONSE) from us: our release request went unanswered.
        if (e.by === "us" && e.notice === 1) {
          sessionLog(e.session).info("release not answered in time: sending a notice and closing");
        }
        return;
      case "stream_close":
        // The client shows why the server reset a stream (a limit, a route, a dial failure).
        if (side === "client" && e.reason.startsWith("reset by peer: ")) {
          sessionLog(e.session).info(`stream ${e.stream}: ${e.reason}`);
        }
        return;
      default:
        // bytes: for metrics; session_end logs the totals.
        return;
    }
  };
  return hub.subscribe(observe);
}
