/**
 * Replays every input `deno task fuzz` found (tests/vectors/fuzz_regressions_v1.json)
 * through its target: no crash, within the target's hang bound (times 5, for
 * a loaded machine), and the expected outcome. Also runs every target's
 * seeds, and holds the engine to finding a planted crash and a planted hang,
 * so a harness that stopped looking would fail here.
 */
import assert from "node:assert/strict";
import { campaign, runOne } from "./_engine.ts";
import { type FuzzTarget, targetNamed, TARGETS } from "./targets.ts";

interface Case {
  target: string;
  why: string;
  input: [string, number][];
  expect?: string;
}

const hex = (s: string) => Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));

function inputOf(c: Case): Uint8Array {
  const parts = c.input.flatMap(([h, n]) => Array<Uint8Array>(n).fill(hex(h)));
  const out = new Uint8Array(parts.reduce((k, p) => k + p.length, 0));
  let at = 0;
  for (const p of parts) (out.set(p, at), at += p.length);
  return out;
}

const cases: Case[] = JSON.parse(
  await Deno.readTextFile(new URL("../vectors/fuzz_regressions_v1.json", import.meta.url)),
).cases;

for (const c of cases) {
  Deno.test(`fuzz regression: ${c.target}: ${c.why.slice(0, 70)}`, async () => {
    const t = targetNamed(c.target);
    const r = await runOne(t, inputOf(c));
    assert.equal(r.crash, undefined, `crashed: ${r.crash}`);
    const bound = 5 * (t.slowMs ?? 100);
    assert.ok(r.ms < bound, `took ${r.ms.toFixed(0)} ms, bound ${bound} ms`);
    if (c.expect !== undefined) {
      assert.ok(
        `${r.signature} ${r.message ?? ""}`.includes(c.expect),
        `expected "${c.expect}" in ${r.signature} ${r.message ?? ""}`,
      );
    }
  });
}

Deno.test("every fuzz target runs its seeds without a finding", async () => {
  for (const t of TARGETS) {
    for (const s of await t.seeds()) {
      const r = await runOne(t, s);
      assert.equal(r.crash, undefined, `${t.name}: ${r.crash}`);
    }
  }
});

Deno.test("the fuzz engine finds a planted crash and a planted hang", async () => {
  const planted: FuzzTarget = {
    name: "planted",
    seeds: () => [new Uint8Array(8)],
    run(input) {
      if (input.includes(0xff)) throw new TypeError("planted crash");
      if (input.length > 200) {
        const until = performance.now() + 120;
        while (performance.now() < until) { /* planted hang */ }
      }
      return "ok";
    },
    refusal: (e) => e instanceof RangeError,
  };
  const r = await campaign(planted, {
    seed: 7,
    untilMs: performance.now() + 20_000,
    maxRuns: 5_000,
  });
  const kinds = new Set(r.findings.map((f) => f.kind));
  assert.ok(kinds.has("crash"), `no crash found in ${r.runs} runs`);
  assert.ok(kinds.has("hang"), `no hang found in ${r.runs} runs`);
  const crash = r.findings.find((f) => f.kind === "crash")!;
  assert.match(crash.detail, /planted crash/);
  assert.ok(hex(crash.input).includes(0xff));
});
