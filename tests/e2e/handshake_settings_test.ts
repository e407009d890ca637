/**
 * server.yml's `handshake:` keys on a real server over loopback: the key
 * exchange and record cipher a real client ends up with (`kex`, `aead`), how
 * far off a client's clock may be (`clock_window`), and how many Hellos the
 * replay cache keeps (`replay_cache`). The clock and replay tests drive the
 * client's handshake by hand over plain TCP, to set its clock and to send a
 * recorded Hello again.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { ClientHandshake, type ClientHandshakeOptions } from "../../lib/handshake/mod.ts";
import { credentialsOf } from "../../lib/tunnel/link.ts";
import { test, withDeadline } from "../support/deadline.ts";
import { type Pair, startPair } from "./_harness.ts";

/** `text` (server.yml as init wrote it) with `key: value` set in its `handshake:` section. */
function setHandshake(text: string, settings: Record<string, string>): string {
  for (const [key, value] of Object.entries(settings)) {
    const line = new RegExp(`^  ${key}: .*$`, "m");
    if (!line.test(text)) throw new Error(`server.yml has no handshake.${key} to set`);
    text = text.replace(line, `  ${key}: ${value}`);
  }
  // Many handshakes from 127.0.0.1 in a row: no per-source rate cap in the way.
  return text.replace(/^ {4}handshakes_per_second: .*$/m, "    handshakes_per_second: 1000000");
}

/** A plain-TCP pair without a client, whose server.yml has these `handshake:` settings. */
function serverWith(settings: Record<string, string>): Promise<Pair> {
  return startPair({
    transport: "tcp",
    noClient: true,
    editServer: (text) => setHandshake(text, settings),
  });
}

/** Reads from `conn` until it has some bytes (undefined at end of stream). */
async function readSome(conn: Deno.Conn): Promise<Uint8Array | undefined> {
  const buf = new Uint8Array(64 * 1024);
  const n = await conn.read(buf);
  return n === null ? undefined : buf.slice(0, n);
}

/** alice's handshake with `opts`, and the Hello it sends first. */
async function aliceHandshake(
  pair: Pair,
  opts: Partial<ClientHandshakeOptions> = {},
): Promise<{ hs: ClientHandshake; hello: Uint8Array }> {
  const hs = new ClientHandshake({
    serverPublicKey: pair.profile.serverKey,
    credentials: await credentialsOf(pair.profile),
    now: Date.now,
    ...opts,
  });
  return { hs, hello: hs.hello() };
}

/**
 * Sends `hello` on a new connection and waits for the server's first answer
 * (a ServerHello, or the fallback's reply to a probe); then closes.
 */
async function sendHello(pair: Pair, hello: Uint8Array): Promise<void> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: pair.serverPort });
  try {
    await conn.write(hello);
    await readSome(conn);
  } finally {
    conn.close();
  }
}

/**
 * alice logs in with her clock `skewMs` off. Resolves to the server's login
 * or refusal event: whichever it reports first.
 */
function loginWithClock(pair: Pair, skewMs: number) {
  return withDeadline(
    (async () => {
      const before = pair.serverEvents.of("refusal").length;
      const { hs, hello } = await aliceHandshake(pair, { now: () => Date.now() + skewMs });
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: pair.serverPort });
      try {
        await conn.write(hello);
        for (;;) {
          const chunk = await readSome(conn);
          const refused = pair.serverEvents.of("refusal").slice(before);
          if (refused.length > 0) return refused[0]!;
          if (chunk === undefined) throw new Error("the server closed without a refusal event");
          const step = hs.push(chunk);
          if (step.type === "send") await conn.write(step.bytes);
          if (step.type === "done") {
            await conn.write(step.send);
            const [login] = await pair.serverEvents.waitFor("login", { timeoutMs: 5_000 });
            return login!;
          }
        }
      } finally {
        conn.close();
      }
    })(),
    20_000,
    `a login with the clock ${skewMs / 1000} s off`,
  );
}

test("handshake.kex and handshake.aead: a real client gets the server's first choice that it offers", async () => {
  // The profile offers every key exchange and cipher (the defaults, in the defaults' order).
  await using standard = await startPair({ transport: "tcp" });
  const [first] = await standard.serverEvents.waitFor("login", { timeoutMs: 10_000 });
  assert.equal(first!.kex, "x25519-mlkem768");
  assert.equal(first!.aead, "aes-256-gcm");

  await using chosen = await startPair({
    transport: "tcp",
    editServer: (text) =>
      setHandshake(text, { kex: "[x25519]", aead: "[chacha20-poly1305, aes-128-gcm]" }),
  });
  const [second] = await chosen.serverEvents.waitFor("login", { timeoutMs: 10_000 });
  assert.equal(second!.kex, "x25519");
  assert.equal(second!.aead, "chacha20-poly1305");
});

test("handshake.clock_window: a clock 90 s off is refused with 60s; one 150 s off logs in with 200s", async () => {
  {
    await using pair = await serverWith({ clock_window: "60s" });
    const ev = await loginWithClock(pair, 90_000);
    assert.equal(ev.type, "refusal");
    assert.equal(ev.type === "refusal" && ev.reason, "probe");
    const m = ev.type === "refusal"
      ? /^hello timestamp is (\d+\.\d) s from our clock$/.exec(ev.detail)
      : null;
    assert.ok(m !== null, JSON.stringify(ev));
    assert.ok(Math.abs(Number(m[1]) - 90) <= 1, m[1]);
    assert.equal(pair.serverEvents.of("login").length, 0);
  }
  {
    await using pair = await serverWith({ clock_window: "200s" });
    const ev = await loginWithClock(pair, -150_000);
    assert.equal(ev.type, "login", JSON.stringify(ev));
    assert.equal(ev.type === "login" && ev.user, "alice");
  }
});

test("handshake.replay_cache: after 1000 newer Hellos a cache of 1000 has let the first go, and refuses it as older than its floor", async () => {
  await using pair = await serverWith({ replay_cache: "1000" });
  // Hellos that were answered and then abandoned are "closed" refusals; the fallback's are probes.
  const refusals = () =>
    pair.serverEvents.of("refusal", (e) => e.reason === "probe").map((e) => e.detail);
  // x25519 alone: the server's work per Hello is one X25519, so 1001 Hellos take little time.
  const cheap = { kex: ["x25519" as const] };
  const { hello: first } = await aliceHandshake(pair, cheap);
  await sendHello(pair, first);
  let last = first;
  for (let i = 0; i < 1000; i++) {
    last = (await aliceHandshake(pair, cheap)).hello;
    await sendHello(pair, last);
  }
  assert.deepEqual(refusals(), [], "every fresh Hello was answered");
  // The newest is still remembered: a replay.
  await sendHello(pair, last);
  // The first was evicted to keep 1000: refused by the floor the eviction raised.
  await sendHello(pair, first);
  assert.deepEqual(refusals(), [
    "replayed hello nonce",
    "hello is older than the replay window or floor",
  ]);
});
