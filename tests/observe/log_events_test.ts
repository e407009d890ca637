/**
 * `logEvents` (`lib/observe/log_events.ts`): the wording and level of the
 * log line each event becomes, on the server's side (lines about a session
 * carry the `conn N USER` of the connection that started it) and on the
 * client's. These are tests of log text on purpose: the wording users read
 * is their subject.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import {
  createLogger,
  EventHub,
  logEvents,
  type LogSide,
  type TunnelEventInit,
} from "../../lib/observe/mod.ts";

/** The lines (level and text, no timestamp) `events` become on `side`. */
function linesOf(side: LogSide, events: TunnelEventInit[]): string[] {
  const lines: string[] = [];
  const hub = new EventHub();
  const stop = logEvents(hub, createLogger("debug", side, (l) => lines.push(l)), side);
  for (const e of events) hub.emit(e);
  stop();
  hub.emit(events[0]!);
  assert.equal(hub.active, false, "the returned function unsubscribes");
  return lines.map((l) => l.replace(/^\S+ /, ""));
}

const LOGIN = {
  type: "login",
  session: 1,
  user: "alice",
  remote: "127.0.0.1",
  kex: "x25519",
  aead: "aes-256-gcm",
  resumed: false,
  conn: 3,
} as const;

Deno.test("logEvents: listening, per kind", () => {
  const addr = { hostname: "127.0.0.1", port: 1080 };
  assert.deepEqual(
    linesOf("server", [
      { type: "listening", kind: "tunnel", addr, transport: "tls" },
      { type: "listening", kind: "tunnel", addr, transport: "ws", path: "/live" },
      { type: "listening", kind: "tunnel", addr, transport: "tcp", proxyProtocol: true },
      { type: "listening", kind: "tunnel", addr },
      { type: "listening", kind: "direct", addr },
      { type: "listening", kind: "relay", addr },
    ]),
    [
      "info  [server] listening on tls://127.0.0.1:1080",
      "info  [server] listening on ws://127.0.0.1:1080/live",
      "info  [server] listening on tcp://127.0.0.1:1080 (PROXY v2 header first)",
      "info  [server] listening on 127.0.0.1:1080",
      "info  [server direct] SOCKS5 listening on 127.0.0.1:1080",
      "info  [server relay] relay listening on 127.0.0.1:1080",
    ],
  );
  assert.deepEqual(
    linesOf("client", [
      { type: "listening", kind: "socks5", addr },
      { type: "listening", kind: "http", addr },
    ]),
    [
      "info  [client socks5] SOCKS5 listening on 127.0.0.1:1080",
      "info  [client http] HTTP CONNECT listening on 127.0.0.1:1080",
    ],
  );
});

Deno.test("logEvents: server logins, refusals, sessions, resumptions and stream decisions", () => {
  const remote = "192.0.2.7";
  assert.deepEqual(
    linesOf("server", [
      { type: "refusal", remote, reason: "probe", detail: "replayed hello nonce", conn: 1 },
      { type: "refusal", remote, reason: "auth_failed", detail: "wrong token", conn: 2 },
      { type: "refusal", remote, reason: "timeout", detail: "too slow", conn: 4 },
      { type: "refusal", remote, reason: "closed", detail: "closed during", conn: 5 },
      { type: "refusal", remote, reason: "error", detail: "ECONNRESET", conn: 6 },
      LOGIN,
      { type: "session_start", session: 1, user: "alice", peer: "127.0.0.1" },
      { type: "stream_open", session: 1, stream: 5, target: "example.com:443", user: "alice" },
      {
        type: "stream_refused",
        session: 1,
        stream: 7,
        target: "10.0.0.1:80",
        reply: 2,
        reason: "route tcp:10.0.0.1:80 not allowed",
        cause: "route",
        user: "alice",
      },
      { ...LOGIN, resumed: true, conn: 8 }, // a resumption's login is not worded as one
      { type: "resume", session: 1, user: "alice", via: "127.0.0.1", conn: 8 },
      { type: "link_down", session: 1, reason: "peer silent", tampered: false }, // the session logs it
      {
        type: "session_end",
        session: 1,
        user: "alice",
        reason: "released by peer",
        graceful: true,
        bytesIn: 1,
        bytesOut: 2,
      },
    ]),
    [
      "info  [server conn 1] probe from 192.0.2.7: replayed hello nonce; handing to fallback",
      "warn  [server conn 2] authentication failed from 192.0.2.7: wrong token",
      "info  [server conn 4] handshake with 192.0.2.7 timed out",
      "info  [server conn 5] handshake with 192.0.2.7 closed",
      "warn  [server conn 6] connection error: ECONNRESET",
      'info  [server conn 3] user "alice" connected from 127.0.0.1 (x25519, aes-256-gcm)',
      "debug [server conn 3 alice] stream 5: connected to example.com:443",
      "info  [server conn 3 alice] stream 7: route tcp:10.0.0.1:80 not allowed",
      'info  [server conn 8] user "alice" resumed their session from 127.0.0.1',
      "info  [server conn 3 alice] link to peer down: peer silent",
      "info  [server conn 3 alice] session ended: released by peer",
    ],
  );
});

Deno.test("logEvents: a server session that failed ends with a warning; a restarted one says so", () => {
  assert.deepEqual(
    linesOf("server", [
      { ...LOGIN, resumed: true },
      { type: "session_start", session: 1, user: "alice", peer: "127.0.0.1", restarted: true },
      {
        type: "session_end",
        session: 1,
        user: "alice",
        reason: "no connection for 1 s",
        graceful: false,
        bytesIn: 0,
        bytesOut: 0,
      },
      // The session is forgotten once ended: a later line about it has no prefix.
      { type: "stream_open", session: 1, stream: 1, target: "a:1", user: "alice" },
    ]),
    [
      'info  [server conn 3] user "alice" resumed a session this server does not hold: starting it afresh',
      "warn  [server conn 3 alice] session ended: no connection for 1 s",
      "debug [server] stream 1: connected to a:1",
    ],
  );
});

Deno.test("logEvents: client sessions, lost links, refused and accepted resumptions, paths", () => {
  assert.deepEqual(
    linesOf("client", [
      {
        type: "connect_failed",
        endpoint: "a:1",
        error: "Cannot reach the server at a:1",
        next: "b:2",
      },
      { type: "connect_failed", endpoint: "b:2", error: "Cannot reach the server at b:2" },
      { type: "path_change", session: 1, from: undefined, to: "b:2", reason: "new session" },
      {
        type: "session_start",
        session: 1,
        user: "alice",
        peer: "b:2",
        kex: "x25519",
        aead: "chacha20-poly1305",
      },
      { type: "session_start", session: 2, user: "alice", peer: "b:2" },
      { type: "link_down", session: 1, reason: "record failed: DECRYPT_FAILED", tampered: true },
      { type: "path_avoided", endpoint: "b:2", forMs: 600_000, reason: "tampered with the tunnel" },
      { type: "resume_refused", session: 1, endpoint: "a:1", next: "previous" },
      {
        type: "path_change",
        session: 1,
        from: "b:2",
        to: "a:1",
        reason: "the last endpoint tampered",
      },
      { type: "resume", session: 1, user: "alice", via: "a:1", afterMs: 42 },
      { type: "resume", session: 1, user: "alice", via: "a:1" },
      { type: "resume_refused", session: 1, endpoint: "a:1", next: "give_up" },
      {
        type: "session_end",
        session: 1,
        user: "alice",
        reason: "server no longer has the session",
        graceful: false,
        bytesIn: 0,
        bytesOut: 0,
      },
      {
        type: "session_end",
        session: 2,
        user: "alice",
        reason: "released",
        graceful: true,
        bytesIn: 0,
        bytesOut: 0,
      },
    ]),
    [
      "warn  [client] endpoint a:1: Cannot reach the server at a:1",
      "debug [client] endpoint b:2: Cannot reach the server at b:2",
      "debug [client] using endpoint b:2",
      'info  [client] tunnel up to b:2 as "alice" (x25519, chacha20-poly1305)',
      'info  [client] tunnel up to b:2 as "alice"',
      "info  [client] link to peer down: record failed: DECRYPT_FAILED (tampering detected)",
      "warn  [client] connection lost: record failed: DECRYPT_FAILED; resuming",
      "warn  [client] endpoint b:2 tampered with the tunnel: avoiding it",
      "info  [client] the server refused the latest resumption secret: trying the one before it",
      "info  [client] moved from endpoint b:2 to a:1 (the last endpoint tampered)",
      "info  [client] session resumed via a:1 after 42 ms",
      "info  [client] session resumed via a:1",
      "warn  [client] The server at a:1 no longer has this session: its streams are lost; " +
      "the next request opens a new session",
      "warn  [client] session ended: server no longer has the session",
      "info  [client] session ended: released",
    ],
  );
});
