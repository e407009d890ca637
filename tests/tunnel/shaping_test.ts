/**
 * The timing draws of lib/tunnel/_shaping.ts: keepalive times, cover gaps
 * and sizes, and rotated connection lifetimes lie in their ranges and have
 * the distributions their docs name (checked on many CSPRNG draws).
 *
 * @module
 */
import { strict as assert } from "node:assert";
import {
  COVER_MAX_BYTES,
  coverBytes,
  coverGap,
  keepaliveAfter,
  rotationLifetime,
  uniform,
} from "../../lib/tunnel/_shaping.ts";

const N = 20_000;
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b);
const quantile = (xs: number[], q: number) => sorted(xs)[Math.floor(q * (xs.length - 1))]!;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
const draw = <T>(f: () => T) => Array.from({ length: N }, f);

Deno.test("uniform() draws from [0, 1) with mean 1/2", () => {
  const us = draw(uniform);
  assert.ok(us.every((u) => u >= 0 && u < 1));
  assert.ok(Math.abs(mean(us) - 0.5) < 0.01, `mean ${mean(us)}`);
  assert.ok(new Set(us).size > N * 0.99, "no repeats to speak of");
});

Deno.test("keepaliveAfter() is uniform in [keepalive/2, keepalive]: never later than keepalive", () => {
  assert.equal(keepaliveAfter(15_000, 0), 7_500);
  assert.equal(keepaliveAfter(15_000, 1), 15_000);
  const ks = draw(() => keepaliveAfter(15_000, uniform()));
  assert.ok(ks.every((k) => k >= 7_500 && k < 15_000));
  assert.ok(Math.abs(quantile(ks, 0.5) - 11_250) < 150, `median ${quantile(ks, 0.5)}`);
  assert.ok(Math.abs(quantile(ks, 0.25) - 9_375) < 150, `quartile ${quantile(ks, 0.25)}`);
});

Deno.test("coverGap() is exponential with the given mean, cut to [mean/10, 5 mean]", () => {
  const gs = draw(() => coverGap(10_000, uniform()));
  assert.ok(gs.every((g) => g >= 1_000 && g <= 50_000));
  // Exponential: median = mean * ln 2; the cut moves the mean only a little (+1.3 %).
  assert.ok(Math.abs(quantile(gs, 0.5) - 6_931) < 250, `median ${quantile(gs, 0.5)}`);
  assert.ok(Math.abs(mean(gs) - 10_130) < 300, `mean ${mean(gs)}`);
  assert.equal(coverGap(10_000, 0), 1_000);
  assert.equal(coverGap(10_000, 1 - 1e-12), 50_000);
});

Deno.test("coverBytes() is uniform in 0..1024", () => {
  const bs = draw(() => coverBytes(uniform()));
  assert.ok(bs.every((b) => Number.isInteger(b) && b >= 0 && b <= COVER_MAX_BYTES));
  assert.equal(coverBytes(0), 0);
  assert.equal(coverBytes(1 - 1e-12), COVER_MAX_BYTES);
  assert.ok(Math.abs(mean(bs) - 512) < 12, `mean ${mean(bs)}`);
});

Deno.test("rotationLifetime() is log-normal around the median (sigma 0.5), cut to [median/3, 3 median]", () => {
  const ls = draw(() => rotationLifetime(60_000, uniform(), uniform()));
  assert.ok(ls.every((l) => l >= 20_000 && l <= 180_000));
  assert.ok(Math.abs(quantile(ls, 0.5) - 60_000) < 1_500, `median ${quantile(ls, 0.5)}`);
  // ln(lifetime / median) ~ N(0, 0.5^2): quartiles at exp(±0.5 * 0.674) = 0.714 and 1.40.
  assert.ok(Math.abs(quantile(ls, 0.25) / 60_000 - 0.714) < 0.02, `q1 ${quantile(ls, 0.25)}`);
  assert.ok(Math.abs(quantile(ls, 0.75) / 60_000 - 1.401) < 0.04, `q3 ${quantile(ls, 0.75)}`);
  // Not the flat +-50 % it replaced: about 29 % lie outside [0.5, 1.5] x median.
  const outside = ls.filter((l) => l < 30_000 || l > 90_000).length / N;
  assert.ok(outside > 0.25 && outside < 0.33, `${(outside * 100).toFixed(1)} % outside`);
});
