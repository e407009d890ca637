/**
 * The counters' arithmetic, the state file's JSON form and the Prometheus
 * text format (checked by the real `promtool check metrics` when it is
 * installed; CI installs it).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type AccountingBatch,
  applyBatch,
  emptyBatch,
  emptySnapshot,
  renderExposition,
  serverMetrics,
} from "../../lib/accounting/mod.ts";
import { mergeBatch } from "../../lib/accounting/counters.ts";
import { decodeState, encodeState } from "../../lib/accounting/_state.ts";
import { promtoolCheck } from "../support/promtool.ts";

function batch(
  users: [string, AccountingBatch["users"] extends Map<string, infer D> ? D : never][],
) {
  return { server: {}, users: new Map(users) };
}

Deno.test("applyBatch() adds per user and per server, and moves quota periods", () => {
  const s = emptySnapshot();
  applyBatch(s, {
    server: { bytesIn: 10, refusals: new Map([["probe", 2]]) },
    users: new Map([["alice", { bytesIn: 10, bytesOut: 20, loginsOk: 1 }]]),
  });
  applyBatch(s, { server: { refusals: new Map([["probe", 1]]) }, users: new Map() });
  applyBatch(s, batch([["alice", { periodStart: 1000, bytesOut: 5 }]]));
  applyBatch(s, batch([["alice", { periodStart: 1000, bytesOut: 7 }]]));
  const a = s.users.get("alice")!;
  assert.equal(a.bytesIn, 10);
  assert.equal(a.bytesOut, 32);
  assert.equal(a.loginsOk, 1);
  assert.deepEqual(a.period, { start: 1000, bytesIn: 0, bytesOut: 12 });
  applyBatch(s, batch([["alice", { periodStart: 2000, bytesIn: 1 }]]));
  assert.deepEqual(s.users.get("alice")!.period, { start: 2000, bytesIn: 1, bytesOut: 0 });
  assert.equal(s.server.bytesIn, 10);
  assert.equal(s.server.refusals.get("probe"), 3);
});

Deno.test("mergeBatch() gives the same result as applying both batches", () => {
  const a: AccountingBatch = {
    server: { loginsOk: 1, limits: new Map([["quota", 1]]) },
    users: new Map([["bob", { bytesOut: 3, sessionsLive: 1 }]]),
  };
  const b: AccountingBatch = {
    server: { loginsOk: 2, limits: new Map([["quota", 2], ["max_tunnels", 1]]) },
    users: new Map([["bob", { bytesOut: 4, sessionsLive: -1 }], ["carol", { kicks: 1 }]]),
  };
  const one = emptySnapshot();
  applyBatch(one, a);
  applyBatch(one, b);
  const merged = emptyBatch();
  mergeBatch(merged, a);
  mergeBatch(merged, b);
  const two = emptySnapshot();
  applyBatch(two, merged);
  assert.deepEqual(two, one);
});

Deno.test("user names are data: __proto__ and constructor are ordinary users", () => {
  const s = emptySnapshot();
  applyBatch(s, batch([["__proto__", { kicks: 1 }], ["constructor", { kicks: 2 }]]));
  const back = decodeState(encodeState(s, 0));
  assert.equal(back.users.get("__proto__")?.kicks, 1);
  assert.equal(back.users.get("constructor")?.kicks, 2);
  assert.equal(({} as Record<string, unknown>).kicks, undefined);
});

Deno.test("the state file round-trips every counter; live-session gauges come back as 0", () => {
  const s = emptySnapshot();
  applyBatch(s, {
    server: { bytesIn: 1, bytesOut: 2, sessionsStarted: 3, refusals: new Map([["timeout", 4]]) },
    users: new Map([["alice", {
      bytesIn: 5,
      bytesOut: 6,
      streamsOpened: 7,
      streamsRefused: 8,
      loginsOk: 9,
      loginsResumed: 10,
      loginsFailed: 11,
      kicks: 12,
      sessionsLive: 2,
      periodStart: 13,
    }]]),
  });
  const text = encodeState(s, Date.UTC(2026, 0, 1));
  assert.match(text, /"saved": "2026-01-01T00:00:00.000Z"/);
  const back = decodeState(text);
  const want = structuredClone(s);
  want.users.get("alice")!.sessionsLive = 0;
  assert.deepEqual(back, want);
});

Deno.test("decodeState() refuses what is not a state file, naming what is wrong", () => {
  assert.throws(() => decodeState("{"), /^SyntaxError: Not JSON/);
  assert.throws(() => decodeState("[]"), /Not a NitroSocks state file/);
  assert.throws(
    () => decodeState('{"format":"nitrosocks-state","version":2,"server":{},"users":{}}'),
    /Unsupported state file version 2: this build reads 1/,
  );
  assert.throws(
    () =>
      decodeState(
        '{"format":"nitrosocks-state","version":1,"server":{},"users":{"a":{"bytesIn":-1}}}',
      ),
    /Invalid users\["a"\]\.bytesIn: expected a number of 0 or more/,
  );
  assert.throws(
    () =>
      decodeState('{"format":"nitrosocks-state","version":1,"server":{"kicks":"x"},"users":{}}'),
    /Invalid server\.kicks/,
  );
});

Deno.test("renderExposition() escapes label values and help text, and checks names", () => {
  const text = renderExposition([
    {
      name: "x_total",
      help: "a\\b\nc",
      type: "counter",
      samples: [{ labels: { user: 'q"\\\n' }, value: 1 }, { value: Infinity }],
    },
    { name: "empty", help: "left out", type: "gauge", samples: [] },
  ]);
  assert.equal(
    text,
    '# HELP x_total a\\\\b\\nc\n# TYPE x_total counter\nx_total{user="q\\"\\\\\\n"} 1\nx_total +Inf\n',
  );
  assert.throws(
    () => renderExposition([{ name: "x", help: "", type: "counter", samples: [] }]),
    /counters end in _total/,
  );
  assert.throws(
    () => renderExposition([{ name: "1x", help: "", type: "gauge", samples: [] }]),
    /Invalid metric name "1x"/,
  );
  assert.throws(
    () =>
      renderExposition([{
        name: "x",
        help: "",
        type: "gauge",
        samples: [{ labels: { "a-b": "" }, value: 0 }],
      }]),
    /Invalid label name "a-b"/,
  );
});

Deno.test("serverMetrics() passes promtool check metrics, with every family and odd label values", async () => {
  const s = emptySnapshot();
  applyBatch(s, {
    server: { bytesIn: 100, loginsFailed: 1, limits: new Map([["max_tunnels", 1]]) },
    users: new Map([
      ["alice", { bytesIn: 100, bytesOut: 2e12, streamsOpened: 3, periodStart: 0 }],
      ['we"ird\\user\n', { kicks: 1 }],
    ]),
  });
  const text = renderExposition(serverMetrics({
    snapshot: s,
    users: 2,
    streamsLive: 0,
    startedAt: Date.now() - 5000,
    now: Date.now(),
    memory: { rss: 50e6, heapUsed: 10e6 },
  }));
  for (
    const line of [
      'nitrosocks_user_bytes_total{user="alice",direction="out"} 2000000000000',
      'nitrosocks_user_kicks_total{user="we\\"ird\\\\user\\n"} 1',
      'nitrosocks_sessions_live{user="alice"} 0',
      'nitrosocks_user_period_bytes{user="alice",direction="in"} 100',
      'nitrosocks_refusals_total{reason="auth_failed"} 0',
      'nitrosocks_limit_hits_total{limit="max_tunnels"} 1',
      'nitrosocks_logins_total{result="failed"} 1',
      "# TYPE nitrosocks_uptime_seconds gauge",
    ]
  ) assert.ok(text.includes(`${line}\n`), `missing ${line}`);
  const r = await promtoolCheck(text);
  if (r === undefined) {
    console.warn(
      "SKIPPED the promtool part: promtool is not installed (Debian package prometheus)",
    );
    return;
  }
  assert.equal(r.code, 0, r.output);
  assert.equal(r.output.trim(), "", "promtool reported lint problems");
});
