/**
 * lib/session/controller.ts: the pure session controller's decisions, with
 * a clock the test moves by hand — re-key due by time and by bytes, stale
 * and short REKEY payloads ignored, when the mixin goes to the sealer,
 * resume with and without lost state, and the release outcomes (three-step
 * exchange, unanswered, NOTICE, refusals).
 */
import assert from "node:assert/strict";
import { ProtocolError } from "../../lib/errors.ts";
import {
  decodeRekeyBody,
  decodeRekeyPayload,
  decodeReleaseBody,
  decodeResumeFrame,
  encodeRekeyPayload,
  encodeResumeFrame,
  RekeyState,
  RELEASE_UNANSWERED,
  ReleaseReason,
  SessionController,
} from "../../lib/session/mod.ts";

const KEY = new Uint8Array(32).fill(5);
const OTHER_KEY = new Uint8Array(32).fill(6);

function isCode(code: string) {
  return (e: unknown) => e instanceof ProtocolError && e.code === code;
}

/** A clock tests move by hand. */
class Clock {
  now = 1_000_000;
  advance(ms: number): number {
    return this.now += ms;
  }
}

function pair(rekey = { bytes: 1 << 30, ms: 60_000 }, clock = new Clock()) {
  const server = new SessionController({ role: "server", rekey, releaseKey: KEY, now: clock.now });
  const client = new SessionController({ role: "client", rekey, releaseKey: KEY, now: clock.now });
  server.linkUp(0xabcd, clock.now, 0);
  client.linkUp(0xabcd, clock.now, 0);
  return { server, client, clock };
}

/** Runs a server-started exchange to the end; returns both decisions. */
function finishRekey(
  server: SessionController,
  client: SessionController,
  init: Uint8Array,
  now: number,
  bytes: number,
) {
  const answer = client.onRekey(init, now, bytes);
  assert.equal(answer.type, "apply");
  if (answer.type !== "apply") throw new Error("unreachable");
  const done = server.onRekey(answer.reply!, now, bytes);
  assert.equal(done.type, "apply");
  if (done.type !== "apply") throw new Error("unreachable");
  return { answer, done };
}

// ---- re-key -----------------------------------------------------------------

Deno.test("rekeyIfDue(): the server starts a re-key once the interval has passed, then counts from then", () => {
  const { server, client, clock } = pair();
  assert.equal(server.rekeyIfDue(clock.advance(59_999), 0), undefined);
  const init = server.rekeyIfDue(clock.advance(1), 0);
  assert.ok(init !== undefined, "due after 60 s");
  const p = decodeRekeyPayload(init);
  assert.equal(p?.linkId, 0xabcd, "the payload names the current link");
  assert.equal(decodeRekeyBody(p!.body).type, "init");
  assert.equal(server.rekeyPending, true);
  assert.equal(server.rekeyIfDue(clock.advance(3_600_000), 0), undefined, "never two at once");
  // Completed an hour later: the next one is due 60 s after the completion.
  finishRekey(server, client, init, clock.now, 0);
  assert.equal(server.rekeyPending, false);
  assert.equal(server.rekeyIfDue(clock.advance(59_999), 0), undefined);
  assert.ok(server.rekeyIfDue(clock.advance(1), 0) !== undefined);
});

Deno.test("rekeyIfDue(): the server starts a re-key once enough bytes crossed since the last", () => {
  const { server, client, clock } = pair({ bytes: 1000, ms: 3_600_000 });
  assert.equal(server.rekeyIfDue(clock.advance(1), 999), undefined);
  const init = server.rekeyIfDue(clock.advance(1), 1000);
  assert.ok(init !== undefined, "due at 1000 bytes");
  // Completed when 1500 bytes had crossed: the next is due at 2500.
  finishRekey(server, client, init, clock.advance(10), 1500);
  assert.equal(server.rekeyIfDue(clock.advance(1), 2499), undefined);
  assert.ok(server.rekeyIfDue(clock.advance(1), 2500) !== undefined);
});

Deno.test("rekeyIfDue(): a client runs its own policy too; a side without one never starts", () => {
  const clock = new Clock();
  const client = new SessionController({
    role: "client",
    rekey: { bytes: 10, ms: 1000 },
    now: clock.now,
  });
  const bare = new SessionController({ role: "server", now: clock.now });
  client.linkUp(1, clock.now, 0);
  bare.linkUp(1, clock.now, 0);
  assert.equal(client.rekeyIfDue(clock.advance(999), 9), undefined, "neither limit reached");
  assert.ok(client.rekeyIfDue(clock.advance(1), 9) !== undefined, "due by time");
  assert.equal(client.rekeyIfDue(clock.advance(10_000), 10 ** 6), undefined, "one pending");
  assert.equal(bare.rekeyIfDue(clock.now, 10 ** 12), undefined);
  // A side without a policy may still start one on request.
  assert.ok(bare.startRekey() !== undefined);
  assert.equal(bare.startRekey(), undefined, "not while one is pending");
});

Deno.test("rekeyIfDue(): when both policies fire at once, the server's INIT wins and one exchange completes", () => {
  const clock = new Clock();
  const policy = { bytes: 10 ** 9, ms: 1000 };
  const server = new SessionController({ role: "server", rekey: policy, now: clock.now });
  const client = new SessionController({ role: "client", rekey: policy, now: clock.now });
  server.linkUp(5, clock.now, 0);
  client.linkUp(5, clock.now, 0);
  const sInit = server.rekeyIfDue(clock.advance(1000), 0)!;
  const cInit = client.rekeyIfDue(clock.now, 0)!;
  assert.ok(sInit !== undefined && cInit !== undefined);
  // The server ignores the client's INIT; the client abandons its own and answers.
  assert.equal(server.onRekey(cInit, clock.advance(1), 0).type, "none");
  const answer = client.onRekey(sInit, clock.now, 0);
  assert.equal(answer.type, "apply");
  if (answer.type !== "apply") return;
  const done = server.onRekey(answer.reply!, clock.advance(1), 0);
  assert.equal(done.type, "apply");
  if (done.type !== "apply") return;
  assert.deepEqual(done.mixin, answer.mixin);
  assert.equal(server.rekeyPending, false);
  assert.equal(client.rekeyPending, false);
  // Both count the next interval from this exchange.
  assert.equal(client.rekeyIfDue(clock.advance(998), 0), undefined);
  assert.equal(server.rekeyIfDue(clock.now, 0), undefined);
});

Deno.test("linkUp(): a new link restarts the re-key counters and abandons a pending exchange", () => {
  const { server, clock } = pair({ bytes: 1000, ms: 60_000 });
  assert.ok(server.rekeyIfDue(clock.advance(60_000), 0) !== undefined);
  assert.equal(server.rekeyPending, true);
  server.linkUp(0x1234, clock.advance(30_000), 800);
  assert.equal(server.rekeyPending, false);
  assert.equal(server.linkId, 0x1234);
  assert.equal(
    server.rekeyIfDue(clock.advance(59_999), 1799),
    undefined,
    "counted from the new link",
  );
  const init = server.rekeyIfDue(clock.now, 1800);
  assert.equal(decodeRekeyPayload(init!)?.linkId, 0x1234);
});

Deno.test("onRekey(): the responder seals its REPLY under the old key, the initiator re-keys at once; same mixin", () => {
  const { server, client, clock } = pair();
  const init = server.startRekey()!;
  const { answer, done } = finishRekey(server, client, init, clock.now, 0);
  assert.equal(answer.sealer, "after_reply");
  assert.equal(decodeRekeyPayload(answer.reply!)?.linkId, 0xabcd, "the REPLY names the link");
  assert.equal(decodeRekeyBody(decodeRekeyPayload(answer.reply!)!.body).type, "reply");
  assert.equal(done.sealer, "now");
  assert.equal(done.reply, undefined);
  assert.deepEqual(done.mixin, answer.mixin);
  assert.equal(done.mixin.length, 32);
});

Deno.test("onRekey(): a payload naming another link is ignored and changes nothing", () => {
  const { server, client, clock } = pair();
  const stale = new SessionController({ role: "server", now: 0 });
  stale.linkUp(0xabcc, 0, 0);
  assert.deepEqual(client.onRekey(stale.startRekey()!, clock.now, 0), {
    type: "ignore",
    why: "stale_link",
  });
  // A REPLY from an earlier link does not complete (or break) ours.
  const init = server.startRekey()!;
  const oldReply = encodeRekeyPayload(
    0xabcc,
    new RekeyState("client").consume(
      decodeRekeyPayload(init)!.body,
    ).reply!,
  );
  assert.deepEqual(server.onRekey(oldReply, clock.now, 0), { type: "ignore", why: "stale_link" });
  assert.equal(server.rekeyPending, true);
  finishRekey(server, client, init, clock.now, 0);
});

Deno.test("onRekey(): a payload too short for a link id is ignored", () => {
  const { client, clock } = pair();
  for (const n of [0, 1, 3]) {
    assert.deepEqual(client.onRekey(new Uint8Array(n), clock.now, 0), {
      type: "ignore",
      why: "no_link_id",
    });
  }
});

Deno.test("onRekey(): simultaneous INITs: the server's wins; a REPLY without an INIT throws BAD_STATE", () => {
  const { server, client, clock } = pair();
  const ci = client.startRekey()!;
  const si = server.startRekey()!;
  assert.deepEqual(server.onRekey(ci, clock.now, 0), { type: "none" });
  const { answer } = finishRekey(server, client, si, clock.now, 0);
  assert.throws(() => client.onRekey(answer.reply!, clock.now, 0), isCode("BAD_STATE"));
});

// ---- resume -----------------------------------------------------------------

Deno.test("resumeFrame(): our count, or 0 and STATE_LOST when we hold no state", () => {
  const c = new SessionController({ role: "server", now: 0 });
  assert.deepEqual(decodeResumeFrame(c.resumeFrame(41n, false)), {
    received: 41n,
    stateLost: false,
  });
  assert.deepEqual(decodeResumeFrame(c.resumeFrame(41n, true)), { received: 0n, stateLost: true });
});

Deno.test("onResume(): resend from the peer's count; a fresh mux when the peer lost the session", () => {
  const c = new SessionController({ role: "client", now: 0 });
  assert.deepEqual(c.onResume(encodeResumeFrame({ received: 9n, stateLost: false }), false), {
    type: "resend",
    received: 9n,
  });
  assert.deepEqual(c.onResume(encodeResumeFrame({ received: 0n, stateLost: true }), false), {
    type: "fresh_mux",
  });
});

Deno.test("onResume(): a side that lost the session itself has nothing to resend", () => {
  const c = new SessionController({ role: "server", now: 0 });
  for (const stateLost of [false, true]) {
    assert.deepEqual(c.onResume(encodeResumeFrame({ received: 9n, stateLost }), true), {
      type: "continue",
    });
  }
});

Deno.test("onResume(): a first record that is not a RESUME frame throws", () => {
  const c = new SessionController({ role: "client", now: 0 });
  const ping = Uint8Array.of(6, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1);
  assert.throws(() => c.onResume(ping, false), isCode("MALFORMED"));
  assert.throws(() => c.onResume(new Uint8Array(0), false), isCode("TRUNCATED"));
});

// ---- release ----------------------------------------------------------------

Deno.test("release: the three-step exchange releases both sides, ours by us and theirs by the peer", () => {
  const { server, client } = pair();
  const start = client.startRelease(true);
  assert.equal(start.type, "send");
  if (start.type !== "send") throw new Error("unreachable");
  assert.equal(decodeReleaseBody(start.body).type, "request");
  const challenge = server.onRelease(start.body);
  assert.equal(challenge.released, undefined);
  assert.equal(decodeReleaseBody(challenge.reply!).type, "challenge");
  const confirm = client.onRelease(challenge.reply!);
  assert.deepEqual(confirm.released, { by: "us", reason: "released" });
  assert.equal(decodeReleaseBody(confirm.reply!).type, "confirm");
  assert.deepEqual(client.released, { by: "us", reason: "released" });
  const end = server.onRelease(confirm.reply!);
  assert.deepEqual(end, { released: { by: "peer", reason: "released by peer" } });
  assert.deepEqual(server.released, end.released);
});

Deno.test("release: without a key or a ready link there is nothing to release over", () => {
  const bare = new SessionController({ role: "client", now: 0 });
  const reason = "closed without a link to release over";
  assert.deepEqual(bare.startRelease(true), { type: "close", reason });
  const { client } = pair();
  assert.deepEqual(client.startRelease(false), { type: "close", reason });
  assert.equal(bare.notice(ReleaseReason.SHUTDOWN), undefined);
  assert.deepEqual(bare.onRelease(new Uint8Array(10)), {}, "ignored without a key");
});

Deno.test("release: unanswered, we send a NO_RESPONSE notice; the peer takes it; a late answer is refused", () => {
  const { server, client } = pair();
  const start = client.startRelease(true);
  assert.equal(start.type, "send");
  const gaveUp = client.releaseUnanswered();
  assert.deepEqual(gaveUp.released, {
    by: "us",
    reason: RELEASE_UNANSWERED,
    notice: ReleaseReason.NO_RESPONSE,
  });
  const body = decodeReleaseBody(gaveUp.body);
  assert.equal(body.type, "notice");
  assert.equal(body.type === "notice" && body.reason, ReleaseReason.NO_RESPONSE);
  assert.deepEqual(server.onRelease(gaveUp.body).released, {
    by: "peer",
    reason: "peer ended the session (notice 1: no answer to a release request)",
    notice: ReleaseReason.NO_RESPONSE,
  });
  // The request reaching the server only now is refused: it is already released.
  if (start.type === "send") assert.match(server.onRelease(start.body).refused ?? "", /released/);
  assert.throws(
    () => new SessionController({ role: "client", now: 0 }).releaseUnanswered(),
    isCode("BAD_STATE"),
  );
});

Deno.test("release: a NOTICE (shutdown) releases the peer at once", () => {
  const { server, client } = pair();
  const notice = server.notice(ReleaseReason.SHUTDOWN)!;
  assert.deepEqual(client.onRelease(notice), {
    released: {
      by: "peer",
      reason: "peer ended the session (notice 2: shutting down)",
      notice: ReleaseReason.SHUTDOWN,
    },
  });
  assert.equal(client.released?.by, "peer");
});

Deno.test("release: a NOTICE crossing our REQUEST completes our release", () => {
  const { server, client } = pair();
  client.startRelease(true);
  assert.deepEqual(client.onRelease(server.notice(ReleaseReason.SHUTDOWN)!).released, {
    by: "us",
    reason: "released",
  });
});

Deno.test("release: a body under another key is refused and releases nothing", () => {
  const { client } = pair();
  const stranger = new SessionController({ role: "server", releaseKey: OTHER_KEY, now: 0 });
  const r = client.onRelease(stranger.notice(ReleaseReason.SHUTDOWN)!);
  assert.match(r.refused ?? "", /MAC does not match/);
  assert.equal(r.released, undefined);
  assert.equal(client.released, undefined);
});

Deno.test("setReleaseKey(): after a resumption the new key makes the notices and only they valid", () => {
  const { server } = pair();
  const client = new SessionController({ role: "client", releaseKey: KEY, now: 0 });
  client.setReleaseKey(OTHER_KEY);
  assert.ok(client.onRelease(server.notice(ReleaseReason.SHUTDOWN)!).refused !== undefined);
  const resumed = new SessionController({ role: "server", releaseKey: OTHER_KEY, now: 0 });
  assert.equal(client.onRelease(resumed.notice(ReleaseReason.SHUTDOWN)!).released?.by, "peer");
});

Deno.test("wipe(): zeroes the release key the controller holds (a copy of the caller's)", () => {
  const key = new Uint8Array(32).fill(9);
  const c = new SessionController({ role: "client", releaseKey: key, now: 0 });
  c.wipe();
  assert.deepEqual(key, new Uint8Array(32).fill(9), "the caller's key is untouched");
  // A notice made with the zeroed key no longer verifies under the real one.
  const peer = new SessionController({ role: "server", releaseKey: key, now: 0 });
  assert.ok(peer.onRelease(c.notice(ReleaseReason.SHUTDOWN)!).refused !== undefined);
});
