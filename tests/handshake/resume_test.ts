import { strict as assert } from "node:assert";
import { ProtocolError } from "../../lib/errors.ts";
import { signJwt } from "../../lib/crypto/jwt.ts";
import {
  ClientHandshake,
  type ClientResume,
  type ClientStep,
  decodeTicketKeys,
  encodeTicketKeys,
  generateTicketKey,
  HELLO_MAX_BYTES,
  type KexId,
  ReplayGuard,
  RESULT_MAX_BYTES,
  type ResumableSession,
  RESUME_RESPONSE_MAX_BYTES,
  RESUME_RESPONSE_MIN_BYTES,
  SERVER_HELLO_MAX_BYTES,
  ServerHandshake,
  type ServerStep,
  type SessionSecrets,
  TicketKeyring,
  type UserRecord,
} from "../../lib/handshake/mod.ts";
import { decodeHelloBody, encodeHelloBody } from "../../lib/handshake/messages.ts";
import { hex } from "../crypto/_hex.ts";
import {
  drbg,
  expectClient,
  expectServer,
  type Fixture,
  fixture,
  helloWithMacs,
  runHandshake,
  T0,
  type Transcript,
} from "./_helpers.ts";
import { CK0, mixHash, openSpecFrame, sealSpecFrame } from "./_spec.ts";
import { assertThrowsWith } from "../support/assert.ts";

/** A shared clock: servers, clients and keyrings read it. */
const clock = { t: T0 };
const now = () => clock.t;

/** Ticket keys fixed by a label; `random` fixed too, so a run can be repeated byte for byte. */
function keyring(label = "ring", ids = [1], lifetimeMs?: number): TicketKeyring {
  return new TicketKeyring(
    ids.map((id) => generateTicketKey(id, drbg(`${label} key ${id}`))),
    { now, random: drbg(`${label} nonces`), ...(lifetimeMs === undefined ? {} : { lifetimeMs }) },
  );
}

/**
 * One server process as the tunnel would run it: a session table updated on
 * every "done", an optional ticket keyring, one ReplayGuard.
 */
class Deployment {
  readonly table = new Map<string, ResumableSession>();
  readonly users: Map<string, UserRecord>;
  readonly log: string[] = [];
  replay = new ReplayGuard();
  constructor(
    readonly f: Fixture,
    readonly opts: { tickets?: () => TicketKeyring; table?: boolean; kex?: KexId[] } = {},
  ) {
    this.users = new Map([[f.record.userId, f.record]]);
  }

  server(label = "server"): ServerHandshake {
    const tickets = this.opts.tickets?.();
    return new ServerHandshake({
      identity: this.f.identity,
      lookupUser: (id) => this.users.get(id),
      replay: this.replay,
      now,
      random: drbg(label),
      log: (m) => this.log.push(m),
      ...(this.opts.kex === undefined ? {} : { kex: this.opts.kex }),
      ...(this.opts.table === false ? {} : { lookupSession: (id) => this.table.get(hex(id)) }),
      ...(tickets === undefined ? {} : { tickets }),
    });
  }

  /** What the tunnel does on "done": the session's latest resumption secret replaces the old. */
  remember(s: SessionSecrets): void {
    this.table.set(hex(s.sessionId), { resumptionSecret: s.resumptionSecret, userId: s.userId });
  }

  /** Runs a handshake to the end and remembers the session. */
  run(client: ClientHandshake, label = "server"): Transcript {
    const t = runHandshake(client, this.server(label));
    this.remember(t.server);
    return t;
  }
}

function client(
  f: Fixture,
  o: { resume?: ClientResume; label?: string; kex?: KexId[]; userId?: string; jwt?: string } = {},
): ClientHandshake {
  return new ClientHandshake({
    serverPublicKey: f.serverPublicKey,
    credentials: {
      userId: o.userId ?? f.userId,
      clientKey: f.clientKey.privateKey,
      ...(o.jwt === undefined ? { token: f.token } : { jwt: o.jwt }),
    },
    now,
    random: drbg(o.label ?? "client"),
    ...(o.kex === undefined ? {} : { kex: o.kex }),
    ...(o.resume === undefined ? {} : { resume: o.resume }),
  });
}

/** What a client keeps from a session to resume it. */
function resumeOf(s: SessionSecrets, withTicket = true): ClientResume {
  const r: ClientResume = { sessionId: s.sessionId, resumptionSecret: s.resumptionSecret };
  if (withTicket && s.ticket !== undefined) r.ticket = s.ticket;
  return r;
}

function secretsView(s: SessionSecrets): Record<string, unknown> {
  return {
    ...s,
    sessionId: hex(s.sessionId),
    clientToServer: hex(s.clientToServer),
    serverToClient: hex(s.serverToClient),
    resumptionSecret: hex(s.resumptionSecret),
    transcriptHash: hex(s.transcriptHash),
    ...(s.ticket === undefined ? {} : { ticket: hex(s.ticket) }),
  };
}

function assertResumed(first: SessionSecrets, t: Transcript): void {
  assert.deepEqual(secretsView(t.client), secretsView(t.server));
  assert.equal(t.client.resumed, true);
  assert.equal(t.serverUserId, first.userId);
  assert.equal(hex(t.client.sessionId), hex(first.sessionId), "the session id names the session");
  for (const k of ["clientToServer", "serverToClient", "resumptionSecret"] as const) {
    assert.notEqual(hex(t.client[k]), hex(first[k]), `${k} is new`);
  }
}

const X = ["x25519"] as KexId[];
const SUITES: { name: string; kex: KexId[] | undefined }[] = [
  { name: "x25519", kex: X },
  { name: "hybrid", kex: undefined },
];

for (const suite of SUITES) {
  const kex = suite.kex === undefined ? {} : { kex: suite.kex };

  Deno.test(`[${suite.name}] resume by session id: both sides derive equal, new secrets`, () => {
    clock.t = T0;
    const f = fixture("resume keys");
    const d = new Deployment(f);
    const first = d.run(client(f, kex));
    assert.equal(first.client.resumed, false);
    assert.equal(first.client.resumable, true, "the server has a session table");
    assert.equal(first.client.ticket, undefined, "no keyring, no ticket");
    const step = (() => {
      const c = client(f, { ...kex, resume: resumeOf(first.client), label: "again" });
      const s = d.server("server 2");
      const sh = expectServer(s.push(c.hello()), "send").bytes;
      const r = expectServer(s.push(expectClient(c.push(sh), "send").bytes), "send").bytes;
      const done = expectClient(c.push(r), "done");
      return { c: done, s: expectServer(s.push(done.send), "done") };
    })();
    assert.equal(step.s.resumed, true);
    assert.equal(step.s.userId, "alice");
    assert.deepEqual(secretsView(step.c.secrets), secretsView(step.s.secrets));
    assert.equal(hex(step.c.secrets.sessionId), hex(first.client.sessionId));
    assert.notEqual(hex(step.c.secrets.resumptionSecret), hex(first.client.resumptionSecret));
    assert.notEqual(hex(step.c.secrets.clientToServer), hex(first.client.clientToServer));
  });

  Deno.test(`[${suite.name}] resume by ticket: the Result carries a ticket for the new secret`, () => {
    clock.t = T0;
    const f = fixture("resume keys");
    const ring = keyring();
    const d = new Deployment(f, { tickets: () => ring, table: false });
    const first = d.run(client(f, kex));
    assert.ok(first.client.ticket !== undefined);
    assert.equal(hex(first.client.ticket), hex(first.server.ticket!));
    const inside = ring.open(first.client.ticket)!;
    assert.equal(hex(inside.resumptionSecret), hex(first.client.resumptionSecret));
    assert.equal(inside.userId, "alice");
    assert.equal(inside.issuedMs, T0);
    clock.t = T0 + 30_000;
    const second = d.run(client(f, { ...kex, resume: resumeOf(first.client), label: "c2" }), "s2");
    assertResumed(first.client, second);
    assert.ok(second.client.ticket !== undefined);
    assert.notEqual(hex(second.client.ticket), hex(first.client.ticket));
    assert.equal(
      hex(ring.open(second.client.ticket)!.resumptionSecret),
      hex(second.client.resumptionSecret),
    );
    assert.equal(ring.open(second.client.ticket)!.issuedMs, T0 + 30_000);
  });
}

Deno.test("resume twice in a row: the secret rotates each time and a superseded one is refused", () => {
  clock.t = T0;
  const f = fixture("twice keys");
  const d = new Deployment(f, { kex: X });
  const s0 = d.run(client(f, { kex: X })).client;
  const s1 = d.run(client(f, { kex: X, resume: resumeOf(s0), label: "r1" }), "sr1");
  assertResumed(s0, s1);
  const s2 = d.run(client(f, { kex: X, resume: resumeOf(s1.client), label: "r2" }), "sr2");
  assertResumed(s1.client, s2);
  assert.equal(hex(s2.client.sessionId), hex(s0.sessionId));
  // The secret of s0 (or s1) no longer resumes: the table holds s2's.
  for (const [i, old] of [s0, s1.client].entries()) {
    const c = client(f, { kex: X, resume: resumeOf(old), label: `stale ${i}` });
    const s = d.server(`stale server ${i}`);
    const sh = expectServer(s.push(c.hello()), "send");
    const step = s.push(expectClient(c.push(sh.bytes), "send").bytes);
    assert.equal(step.type, "reject");
    assert.match((step as { reason: string }).reason, /binder .* does not verify/);
  }
});

Deno.test("with a ticket keyring and a session table, the holding server refuses a superseded ticket", () => {
  clock.t = T0;
  const f = fixture("twice keys");
  const ring = keyring("both");
  const d = new Deployment(f, { kex: X, tickets: () => ring });
  const s0 = d.run(client(f, { kex: X })).client;
  const s1 = d.run(client(f, { kex: X, resume: resumeOf(s0), label: "t1" }), "st1");
  assertResumed(s0, s1);
  const c = client(f, { kex: X, resume: resumeOf(s0), label: "t-old" });
  const s = d.server("st-old");
  const sh = expectServer(s.push(c.hello()), "send");
  const step = s.push(expectClient(c.push(sh.bytes), "send").bytes);
  assert.equal(step.type, "reject");
  assert.match((step as { reason: string }).reason, /superseded resumption secret/);
  // The latest ticket still works on it.
  assertResumed(
    s1.client,
    d.run(client(f, { kex: X, resume: resumeOf(s1.client), label: "t2" }), "st2"),
  );
});

Deno.test("without a session table an older ticket stays valid until it expires (documented limit)", () => {
  clock.t = T0;
  const f = fixture("stateless keys");
  const ring = keyring("stateless", [1], 60_000);
  const d = new Deployment(f, { kex: X, tickets: () => ring, table: false });
  const s0 = d.run(client(f, { kex: X })).client;
  d.run(client(f, { kex: X, resume: resumeOf(s0), label: "n1" }), "sn1");
  assertResumed(s0, d.run(client(f, { kex: X, resume: resumeOf(s0), label: "n2" }), "sn2"));
  clock.t = T0 + 60_001;
  const c = client(f, { kex: X, resume: resumeOf(s0), label: "n3" });
  const s = d.server("sn3");
  const sh = expectServer(s.push(c.hello()), "send");
  const step = s.push(expectClient(c.push(sh.bytes), "send").bytes);
  assert.match((step as { reason: string }).reason, /expired/);
});

Deno.test("servers that share only the ticket keyring accept each other's tickets", () => {
  clock.t = T0;
  const f = fixture("lb keys");
  // The key file is what operators copy to every server behind the load balancer.
  const file = encodeTicketKeys([
    generateTicketKey(2, drbg("lb key 2")),
    generateTicketKey(1, drbg("lb key 1")),
  ]);
  const a = new Deployment(f, {
    kex: X,
    table: false,
    tickets: () => new TicketKeyring(decodeTicketKeys(file), { now }),
  });
  const b = new Deployment(f, {
    kex: X,
    table: false,
    tickets: () => new TicketKeyring(decodeTicketKeys(file), { now }),
  });
  assert.notEqual(a.replay, b.replay);
  const s0 = a.run(client(f, { kex: X }), "on a").client;
  const s1 = b.run(client(f, { kex: X, resume: resumeOf(s0), label: "to b" }), "on b");
  assertResumed(s0, s1);
  const s2 = a.run(client(f, { kex: X, resume: resumeOf(s1.client), label: "back to a" }), "a2");
  assertResumed(s1.client, s2);
  assert.equal(hex(s2.client.sessionId), hex(s0.sessionId));
});

/** The server's visible behaviour: what it sent and how it ended. */
function wireShape(c: ClientHandshake, s: ServerHandshake): string {
  const out: string[] = [];
  const s1 = s.push(c.hello());
  out.push(s1.type === "send" ? `send ${s1.bytes.length}` : s1.type);
  if (s1.type !== "send") return out.join(" | ");
  const resp = expectClient(c.push(s1.bytes), "send").bytes;
  const s2 = s.push(resp);
  out.push(s2.type === "send" ? `send ${s2.bytes.length}` : s2.type);
  return out.join(" | ");
}

Deno.test("a refused resumption looks on the wire exactly like a refused login", () => {
  clock.t = T0;
  const f = fixture("refusal keys");
  const ring = keyring("refusal");
  const d = new Deployment(f, { kex: X, tickets: () => ring });
  const s0 = d.run(client(f, { kex: X })).client;
  // Reference: a full handshake with the wrong token.
  const other = fixture("someone else");
  const wrongToken = new ClientHandshake({
    serverPublicKey: f.serverPublicKey,
    credentials: { userId: f.userId, clientKey: f.clientKey.privateKey, token: other.token },
    kex: X,
    now,
    random: drbg("reference"),
  });
  const reference = wireShape(wrongToken, d.server("same server random"));
  assert.match(reference, /^send \d+ \| reject$/);

  const wrongSecret = { ...resumeOf(s0, false), resumptionSecret: new Uint8Array(32).fill(9) };
  const unknown = { ...resumeOf(s0, false), sessionId: new Uint8Array(16).fill(1) };
  const cases: { name: string; resume: ClientResume; log: RegExp; setup?: () => void }[] = [
    { name: "wrong binder (wrong secret)", resume: wrongSecret, log: /binder .* does not verify/ },
    { name: "unknown session", resume: unknown, log: /unknown, expired or released/ },
    {
      name: "released session",
      resume: resumeOf(s0, false),
      log: /unknown, expired or released/,
      setup: () => d.table.delete(hex(s0.sessionId)),
    },
    {
      name: "ticket from another keyring (same key id)",
      resume: { ...resumeOf(s0), ticket: keyring("other").seal(ring.open(s0.ticket!)!) },
      log: /does not open under key 1/,
    },
    {
      name: "ticket from another keyring (other key id)",
      resume: { ...resumeOf(s0), ticket: keyring("other", [5]).seal(ring.open(s0.ticket!)!) },
      log: /key id 5 is not in the keyring/,
    },
    {
      name: "expired ticket",
      resume: resumeOf(s0),
      log: /ticket expired/,
      setup: () => (clock.t = T0 + 3_600_001),
    },
    {
      name: "user removed since",
      resume: resumeOf(s0),
      log: /user "alice" of session .* no longer exists/,
      setup: () => d.users.clear(),
    },
    {
      name: "user disabled since",
      resume: resumeOf(s0),
      log: /user "alice" of session .* refused: disabled/,
      setup: () => d.users.set("alice", { ...f.record, inactive: { reason: "disabled" } }),
    },
  ];
  for (const c of cases) {
    clock.t = T0;
    d.replay = new ReplayGuard(); // the clock jumps between cases
    d.table.set(hex(s0.sessionId), { resumptionSecret: s0.resumptionSecret, userId: "alice" });
    d.users.set("alice", f.record);
    c.setup?.();
    const cl = client(f, { kex: X, resume: c.resume, label: `shape ${c.name}` });
    assert.equal(wireShape(cl, d.server("same server random")), reference, c.name);
    const closed = cl.closed();
    assert.equal(closed.code, "AUTH_FAILED", c.name);
    assert.equal(closed.authFailure, "resume_refused", c.name);
    assert.match(closed.message, /Cannot resume/, c.name);
  }
  // And the reasons reach the log through the reject step.
  for (const c of cases) {
    clock.t = T0;
    d.replay = new ReplayGuard(); // the clock jumps between cases
    d.table.set(hex(s0.sessionId), { resumptionSecret: s0.resumptionSecret, userId: "alice" });
    d.users.set("alice", f.record);
    c.setup?.();
    const cl = client(f, { kex: X, resume: c.resume, label: `reason ${c.name}` });
    const s = d.server(`reason ${c.name}`);
    const sh = expectServer(s.push(cl.hello()), "send");
    const step = expectServer(s.push(expectClient(cl.push(sh.bytes), "send").bytes), "reject");
    assert.match(step.reason, c.log, c.name);
  }
});

Deno.test("a JWT user's session gets no ticket, resumes by session id, and a ticket of theirs is refused", () => {
  clock.t = T0;
  const f = fixture("jwt ticket keys");
  const ring = keyring("jwt ring");
  const d = new Deployment(f, { kex: X, tickets: () => ring });
  // While alice logs in with a token, her sessions get tickets.
  const byToken = d.run(client(f, { kex: X })).client;
  assert.ok(byToken.ticket !== undefined);
  // Now she logs in with JWTs: her sessions get none (exp and routes would not travel in one).
  const secret = new Uint8Array(32).fill(6);
  const { token: _, ...rest } = f.record;
  d.users.set(f.userId, { ...rest, jwt: { keys: { hs256: [secret] } } });
  const jwt = signJwt({ alg: "HS256", secret }, { sub: f.userId, exp: T0 / 1000 + 3600 });
  const first = d.run(client(f, { kex: X, jwt, label: "jwt" }), "s-jwt");
  assert.equal(first.client.ticket, undefined);
  assert.equal(first.server.ticket, undefined);
  assert.equal(first.client.resumable, true, "the session table still resumes it");
  // By session id, on the server that holds the session (its exp timer and routes stay there).
  const again = d.run(client(f, { kex: X, resume: resumeOf(first.client), label: "j2" }), "s-j2");
  assertResumed(first.client, again);
  assert.equal(again.client.ticket, undefined);
  // A ticket of hers, from the token days, is refused like any failed resumption.
  const c = client(f, { kex: X, resume: resumeOf(byToken), label: "old ticket" });
  const s = d.server("s-old");
  const sh = expectServer(s.push(c.hello()), "send");
  const step = expectServer(s.push(expectClient(c.push(sh.bytes), "send").bytes), "reject");
  assert.match(step.reason, /of user "alice", who logs in with a JWT: JWT sessions resume by/);
});

Deno.test("a server with no table and no keyring refuses every resumption like a failed login", () => {
  clock.t = T0;
  const f = fixture("plain keys");
  const d = new Deployment(f, { kex: X });
  const s0 = d.run(client(f, { kex: X })).client;
  const plain = new Deployment(f, { kex: X, table: false });
  const c = client(f, { kex: X, resume: resumeOf(s0), label: "none" });
  const s = plain.server();
  const sh = expectServer(s.push(c.hello()), "send");
  const step = expectServer(s.push(expectClient(c.push(sh.bytes), "send").bytes), "reject");
  assert.match(step.reason, /no session table/);
  const full = plain.run(client(f, { kex: X, label: "plain full" }), "plain full");
  assert.equal(full.client.resumable, false, "the Result does not say resumable");
  assert.equal(full.server.resumable, false);
});

Deno.test("a replayed resume Hello is a probe to a server that saw it, and useless to one that did not", () => {
  clock.t = T0;
  const f = fixture("replay keys");
  const ring = keyring("replay");
  const a = new Deployment(f, { kex: X, tickets: () => ring, table: false });
  const b = new Deployment(f, { kex: X, tickets: () => ring, table: false });
  const s0 = a.run(client(f, { kex: X })).client;
  const captured = a.run(client(f, { kex: X, resume: resumeOf(s0), label: "cap" }), "a-cap");
  assertResumed(s0, captured);
  // Same ReplayGuard: the fallback web site, as for any replayed Hello.
  const again = a.server("a-again");
  const step = again.push(captured.hello);
  assert.equal(step.type, "probe");
  assert.match((step as { reason: string }).reason, /replay/);
  // Another server (own ReplayGuard, same keyring): fresh DH, so a fresh ServerHello the
  // attacker cannot open; the recorded Response does not fit it.
  const other = b.server("b-replay");
  const sh = expectServer(other.push(captured.hello), "send");
  assert.notEqual(hex(sh.bytes), hex(captured.serverHello));
  const end = settleServer(other, captured.response, RESUME_RESPONSE_MAX_BYTES);
  assert.equal(end.type, "reject");
  assert.match((end as { reason: string }).reason, /response/);
});

Deno.test("downgrade: removing or adding the resume extension makes the client refuse the ServerHello", () => {
  clock.t = T0;
  const f = fixture("downgrade keys");
  const d = new Deployment(f, { kex: X });
  const s0 = d.run(client(f, { kex: X })).client;
  for (const direction of ["strip", "add"] as const) {
    const trace = new Map<string, Uint8Array>();
    const c = new ClientHandshake({
      serverPublicKey: f.serverPublicKey,
      credentials: { userId: f.userId, clientKey: f.clientKey.privateKey, token: f.token },
      kex: X,
      now,
      random: drbg(`downgrade ${direction}`),
      trace: (n, v) => trace.set(n, v),
      ...(direction === "strip" ? { resume: resumeOf(s0) } : {}),
    });
    const hello = c.hello();
    // An attacker holding the server's DH key (so es) re-seals the Hello.
    const ck1 = trace.get("ck1")!;
    const hc = mixHash(mixHash(CK0, f.serverPublicKey), hello.subarray(0, 32));
    const body = decodeHelloBody(openSpecFrame(ck1, "hello", hc, hello.subarray(64)));
    if (direction === "strip") {
      assert.ok(body.resume !== undefined);
      delete body.resume;
    } else {
      body.paddingLength = 0;
      body.resume = { kind: "session_id", identity: s0.sessionId, binder: new Uint8Array(32) };
    }
    const forged = helloWithMacs(
      hello.subarray(0, 32),
      sealSpecFrame(ck1, "hello", hc, encodeHelloBody(body)),
      f.serverPublicKey,
    );
    const s = d.server(`downgrade server ${direction}`);
    const sh = expectServer(s.push(forged), "send");
    // Keys come from the client's own transcript, so the ServerHello's length does not
    // unmask or its body does not open: refused either way.
    const out = settleClient(c, sh.bytes, SERVER_HELLO_MAX_BYTES);
    assert.ok(out instanceof ProtocolError, direction);
    assert.ok(["AUTH_FAILED", "MALFORMED", "TOO_LARGE"].includes(out.code), out.code);
  }
});

/** Every message of one resumption by ticket, and a way to replay it up to any point. */
function ticketRun(): {
  t: Transcript;
  before: (msg: Msg) => { client: ClientHandshake; server: ServerHandshake };
} {
  const f = fixture("flip keys");
  const make = () => {
    clock.t = T0;
    const d = new Deployment(f, { kex: X, tickets: () => keyring("flip"), table: false });
    const s0 = d.run(client(f, { kex: X }), "flip first").client;
    return {
      client: client(f, { kex: X, resume: resumeOf(s0), label: "flip client" }),
      server: d.server("flip server"),
    };
  };
  const p = make();
  const t = runHandshake(p.client, p.server);
  assert.equal(t.client.resumed, true);
  assert.ok(t.client.ticket !== undefined);
  const before = (msg: Msg) => {
    const q = make();
    q.client.hello();
    if (msg === "hello" || msg === "serverHello") return q;
    expectServer(q.server.push(t.hello), "send");
    if (msg === "response") return q;
    expectClient(q.client.push(t.serverHello), "send");
    if (msg === "result") return q;
    expectServer(q.server.push(t.response), "send");
    return q;
  };
  return { t, before };
}

type Msg = "hello" | "serverHello" | "response" | "result" | "finish";

function flipped(b: Uint8Array, i: number): Uint8Array {
  const out = b.slice();
  out[i]! ^= 1 << (i % 8);
  return out;
}

function settleServer(s: ServerHandshake, bytes: Uint8Array, limit: number): ServerStep {
  const step = s.push(bytes);
  return step.type === "need_more" ? s.push(new Uint8Array(limit)) : step;
}

function settleClient(c: ClientHandshake, bytes: Uint8Array, limit: number): ClientStep | unknown {
  try {
    const step = c.push(bytes);
    return step.type === "need_more" ? c.push(new Uint8Array(limit)) : step;
  } catch (e) {
    return e;
  }
}

Deno.test("a flipped byte anywhere in any resume message is refused", () => {
  const { t, before } = ticketRun();
  assert.ok(t.response.length >= RESUME_RESPONSE_MIN_BYTES);
  assert.ok(t.response.length <= RESUME_RESPONSE_MAX_BYTES);
  for (let i = 0; i < t.hello.length; i++) {
    const { server } = before("hello");
    assert.equal(
      settleServer(server, flipped(t.hello, i), HELLO_MAX_BYTES).type,
      // mac2 (bytes 48..63) counts only under load (section 15).
      i >= 48 && i < 64 ? "send" : "probe",
      `hello ${i}`,
    );
  }
  for (let i = 0; i < t.serverHello.length; i++) {
    const { client } = before("serverHello");
    const out = settleClient(client, flipped(t.serverHello, i), SERVER_HELLO_MAX_BYTES);
    assert.ok(out instanceof ProtocolError, `serverHello ${i}`);
  }
  for (let i = 0; i < t.response.length; i++) {
    const { server } = before("response");
    const step = settleServer(server, flipped(t.response, i), RESUME_RESPONSE_MAX_BYTES);
    assert.equal(step.type, "reject", `response ${i}`);
  }
  for (let i = 0; i < t.result.length; i++) {
    const { client } = before("result");
    const out = settleClient(client, flipped(t.result, i), RESULT_MAX_BYTES);
    assert.ok(out instanceof ProtocolError, `result ${i}: ${JSON.stringify(out)}`);
  }
  for (let i = 0; i < t.finish.length; i++) {
    const { server } = before("finish");
    assert.equal(server.push(flipped(t.finish, i)).type, "reject", `finish ${i}`);
  }
});

Deno.test("every truncation of every resume message is need_more", () => {
  const { t, before } = ticketRun();
  const sides: [Msg, "client" | "server"][] = [
    ["hello", "server"],
    ["serverHello", "client"],
    ["response", "server"],
    ["result", "client"],
    ["finish", "server"],
  ];
  for (const [msg, side] of sides) {
    for (let k = 0; k < t[msg].length; k++) {
      const p = before(msg);
      const step = side === "server"
        ? p.server.push(t[msg].subarray(0, k))
        : p.client.push(t[msg].subarray(0, k));
      assert.equal(step.type, "need_more", `${msg} cut at ${k}`);
    }
  }
  // Closed while the ticket frame is still on its way: CLOSED, not a credentials error.
  const p = before("result");
  p.client.push(t.result.subarray(0, t.result.length - 1));
  assert.equal(p.client.closed().code, "CLOSED");
});

Deno.test("a ticket too long for a hybrid Hello is replaced by the session id, and sizes stay in limits", () => {
  clock.t = T0;
  const base = fixture("long id keys");
  const userId = "u".repeat(200);
  const f: Fixture = { ...base, userId, record: { ...base.record, userId } };
  const ring = keyring("long");
  for (const table of [true, false]) {
    const d = new Deployment(f, { tickets: () => ring, table });
    const s0 = d.run(client(f)).client;
    assert.equal(s0.ticket!.length, 289);
    for (let i = 0; i < 8; i++) {
      const c = client(f, { resume: resumeOf(s0), label: `long ${table} ${i}` });
      const s = d.server(`long server ${table} ${i}`);
      const hello = c.hello();
      assert.ok(hello.length <= HELLO_MAX_BYTES, `${hello.length}`);
      const sh = expectServer(s.push(hello), "send");
      const step = s.push(expectClient(c.push(sh.bytes), "send").bytes);
      if (!table) {
        assert.equal(step.type, "reject");
        assert.match((step as { reason: string }).reason, /no session table/);
        continue;
      }
      const r = expectServer(step, "send");
      const done = expectClient(c.push(r.bytes), "done");
      assert.equal(expectServer(s.push(done.send), "done").resumed, true);
      d.remember(done.secrets);
      d.table.set(hex(s0.sessionId), { resumptionSecret: s0.resumptionSecret, userId });
    }
  }
  // Over X25519 alone the same ticket fits, so a stateless server accepts it.
  const d = new Deployment(f, { kex: X, tickets: () => ring, table: false });
  const s0 = d.run(client(f, { kex: X })).client;
  assertResumed(s0, d.run(client(f, { kex: X, resume: resumeOf(s0), label: "fits" }), "fits"));
});

Deno.test("resume Hellos keep a spread of sizes (padding is drawn from the room left, not clipped)", () => {
  clock.t = T0;
  const f = fixture("spread keys");
  const ring = keyring("spread");
  const d = new Deployment(f, { tickets: () => ring });
  const s0 = d.run(client(f)).client;
  const sizes = new Set<number>();
  for (let i = 0; i < 40; i++) {
    const hello = client(f, { resume: resumeOf(s0), label: `spread ${i}` }).hello();
    assert.ok(hello.length <= HELLO_MAX_BYTES);
    sizes.add(hello.length);
  }
  assert.ok(sizes.size > 20, `only ${sizes.size} sizes`);
  assert.ok(!sizes.has(HELLO_MAX_BYTES) || sizes.size > 30);
});

Deno.test("ClientHandshake refuses a malformed resume option", () => {
  const f = fixture();
  const good = { sessionId: new Uint8Array(16), resumptionSecret: new Uint8Array(32) };
  const bad: ClientResume[] = [
    { ...good, sessionId: new Uint8Array(15) },
    { ...good, resumptionSecret: new Uint8Array(31) },
    { ...good, ticket: new Uint8Array(0) },
    { ...good, ticket: new Uint8Array(345) },
  ];
  for (const resume of bad) {
    assertThrowsWith(() => client(f, { resume }), RangeError, "Cannot resume: ");
  }
  assertThrowsWith(
    () => client(f, { resume: { ...good, sessionId: [1, 2] as unknown as Uint8Array } }),
    TypeError,
    "Cannot resume: session id is not a Uint8Array",
  );
});

Deno.test("the client keeps its own copy of the resume option", () => {
  clock.t = T0;
  const f = fixture("copy keys");
  const d = new Deployment(f, { kex: X });
  const s0 = d.run(client(f, { kex: X })).client;
  const resume = { sessionId: s0.sessionId.slice(), resumptionSecret: s0.resumptionSecret.slice() };
  const c = client(f, { kex: X, resume, label: "copy" });
  resume.resumptionSecret.fill(0);
  resume.sessionId.fill(0);
  assertResumed(s0, d.run(c, "copy server"));
});
