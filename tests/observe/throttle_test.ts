/** `ThrottledLog` (lib/observe/throttle.ts): one line per key and interval, and how many were held. */
import { strict as assert } from "node:assert";
import { createLogger, ThrottledLog } from "../../lib/observe/mod.ts";

Deno.test("ThrottledLog lets one line per key through each interval and counts the rest", () => {
  const lines: string[] = [];
  let now = 0;
  const log = new ThrottledLog(createLogger("debug", "t", (l) => lines.push(l)), {
    intervalMs: 5_000,
    now: () => now,
  });
  for (let i = 0; i < 100; i++) log.warn("open", "cannot open");
  log.info("other", "another key");
  now = 4_999;
  log.warn("open", "cannot open");
  assert.equal(lines.length, 2);
  now = 6_000;
  log.warn("open", "cannot open");
  assert.equal(lines.length, 3);
  assert.match(lines[0]!, /cannot open$/);
  assert.match(lines[1]!, /another key$/);
  assert.match(lines[2]!, /cannot open \(100 more like this in the last 6 s\)$/);
});
