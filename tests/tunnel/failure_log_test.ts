import assert from "node:assert/strict";
import { createLogger } from "../../lib/observe/mod.ts";
import { FailureLog } from "../../lib/tunnel/failure_log.ts";
import { type NewLink, PathSelector, Reconnector } from "../../lib/tunnel/client.ts";
import type { Session } from "../../lib/tunnel/session.ts";
import { EventHub } from "../../lib/observe/mod.ts";
import { test } from "../support/deadline.ts";

function captured() {
  const lines: string[] = [];
  const log = createLogger("debug", "t", (l) => lines.push(l.replace(/^\S+ /, "")));
  return { lines, log };
}

Deno.test("FailureLog logs attempts 1, 2, 4, 8, … and the recovery with the count and the start", () => {
  const { lines, log } = captured();
  let now = Date.parse("2027-01-01T00:00:00Z");
  const f = new FailureLog(log, () => now);
  for (let i = 0; i < 20; i++) {
    f.failed("server down");
    now += 5_000;
  }
  f.recovered("reconnected");
  assert.deepEqual(lines, [
    "warn  [t] server down",
    "warn  [t] server down (attempt 2; the next report is at attempt 4)",
    "warn  [t] server down (attempt 4; the next report is at attempt 8)",
    "warn  [t] server down (attempt 8; the next report is at attempt 16)",
    "warn  [t] server down (attempt 16; the next report is at attempt 32)",
    "info  [t] reconnected: 20 attempts failed since 2027-01-01T00:00:00.000Z",
  ]);
  f.recovered("reconnected");
  assert.equal(lines.length, 6, "nothing to say after a success without failures");
  assert.equal(f.count, 0);
});

test("Reconnector reports 20 failed attempts in 5 lines, then how many failed since when", async () => {
  const { lines, log } = captured();
  const events = new EventHub();
  const endpoint = {
    server: { host: "127.0.0.1", port: 1 },
    serverName: "localhost",
    transport: "tls" as const,
  };
  const paths = new PathSelector([endpoint], { events });
  let calls = 0;
  const link = {
    link: { conn: { close() {} } },
    secrets: { sessionId: new Uint8Array(16), resumptionSecret: new Uint8Array(32) },
  } as unknown as NewLink;
  const r = new Reconnector({
    paths,
    events,
    log,
    backoff: { firstMs: 1, maxMs: 2 },
    connect: () => {
      calls++;
      return calls <= 20
        ? Promise.reject(new Deno.errors.ConnectionRefused("connection refused by 127.0.0.1:1"))
        : Promise.resolve(link);
    },
  });
  const resumed = await r.reconnect({ isClosed: false } as Session, () => true);
  assert.equal(resumed?.link, link);
  assert.equal(calls, 21);
  const warns = lines.filter((l) => l.startsWith("warn"));
  assert.equal(warns.length, 5, lines.join("\n"));
  assert.match(warns[0]!, /reconnect failed: connection refused by 127\.0\.0\.1:1; retrying/);
  assert.match(lines.at(-1)!, /^info {2}\[t\] reconnected: 20 attempts failed since \d{4}-/);
});
