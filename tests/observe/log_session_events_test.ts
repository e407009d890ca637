/**
 * lib/observe/log_events.ts: the log lines a session's events become —
 * the ones tests and operators grep for (`link to … down`, re-keys, an
 * unanswered release), on the right session's prefix, and none for stream
 * closes and byte counts.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { createLogger, EventHub, logEvents, type LogSide } from "../../lib/observe/mod.ts";

/** A hub logged at debug level into `lines` (without the timestamps). */
function logged(side: LogSide, prefix: string) {
  const lines: string[] = [];
  const hub = new EventHub();
  const stop = logEvents(
    hub,
    createLogger("debug", prefix, (l) => lines.push(l.replace(/^\S+ /, ""))),
    side,
  );
  return { hub, lines, stop };
}

Deno.test("logEvents(): a server's link_down, rekey and unanswered release go to the session's conn and user", () => {
  const { hub, lines, stop } = logged("server", "server");
  hub.emit({
    type: "login",
    session: 3,
    user: "alice",
    remote: "10.0.0.1",
    kex: "x25519",
    aead: "aes-256-gcm",
    resumed: false,
    conn: 5,
  });
  lines.length = 0;
  hub.emit({
    type: "link_down",
    session: 3,
    reason: "record failed: DECRYPT_FAILED: bad tag",
    tampered: true,
    peer: "10.0.0.1",
  });
  hub.emit({ type: "rekey", session: 3 });
  hub.emit({ type: "release", session: 3, by: "us", reason: "x", notice: 1 });
  hub.emit({ type: "release", session: 3, by: "us", reason: "server shutting down", notice: 2 });
  hub.emit({ type: "release", session: 3, by: "peer", reason: "released by peer" });
  stop();
  assert.deepEqual(lines, [
    "info  [server conn 5 alice] link to 10.0.0.1 down: record failed: DECRYPT_FAILED: bad tag (tampering detected)",
    "debug [server conn 5 alice] re-keyed with fresh X25519",
    "info  [server conn 5 alice] release not answered in time: sending a notice and closing",
  ]);
});

Deno.test("logEvents(): an idle tunnel's close is one info line on the session's conn and user", () => {
  const { hub, lines, stop } = logged("server", "server");
  hub.emit({
    type: "login",
    session: 3,
    user: "alice",
    remote: "10.0.0.1",
    kex: "x25519",
    aead: "aes-256-gcm",
    resumed: false,
    conn: 5,
  });
  lines.length = 0;
  hub.emit({ type: "tunnel_idle", session: 3, user: "alice", idleMs: 300_000 });
  stop();
  assert.deepEqual(lines, [
    "info  [server conn 5 alice] no stream for 300 s (limits.idle_timeout): closing the idle tunnel",
  ]);
});

Deno.test("logEvents(): a client's link_down is the link line, then that it resumes", () => {
  const { hub, lines, stop } = logged("client", "client");
  hub.emit({
    type: "link_down",
    session: 1,
    reason: "peer silent for 45.2 s",
    tampered: false,
    peer: "h:1",
  });
  stop();
  assert.deepEqual(lines, [
    "info  [client] link to h:1 down: peer silent for 45.2 s",
    "warn  [client] connection lost: peer silent for 45.2 s; resuming",
  ]);
});

Deno.test("logEvents(): stream closes and byte counts are not logged", () => {
  const { hub, lines, stop } = logged("server", "server");
  hub.emit({
    type: "stream_close",
    session: 1,
    stream: 3,
    bytesIn: 1,
    bytesOut: 2,
    reason: "finished",
  });
  hub.emit({ type: "bytes", session: 1, user: "alice", in: 10, out: 20 });
  stop();
  assert.deepEqual(lines, []);
});
