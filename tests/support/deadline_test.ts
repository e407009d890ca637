/**
 * The deadline helpers themselves: a missed wait and an expired budget fail
 * naming the test and what it waited for, run the registered cleanups, and
 * leave no timer behind when the work is done in time.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import {
  DeadlineError,
  onTimeout,
  step,
  test,
  waitFor,
  withBudget,
  withDeadline,
} from "./deadline.ts";

/** A promise that settles only when `release()` is called (no timer, no op). */
function gate(): { wait: Promise<void>; release(): void } {
  let release = () => {};
  const wait = new Promise<void>((r) => (release = r));
  return { wait, release };
}

const fakeContext = (name: string) => ({ name }) as Deno.TestContext;

Deno.test("withDeadline() resolves with the work's value and clears its timer", async () => {
  assert.equal(await withDeadline(Promise.resolve(7), 1_000, "a number"), 7);
  assert.equal(await withDeadline(() => Promise.resolve("x"), 1_000, "a string"), "x");
});

Deno.test("withDeadline() passes the work's own error through", async () => {
  await assert.rejects(
    withDeadline(Promise.reject(new RangeError("Cannot do it: out of range")), 1_000, "work"),
    (e: unknown) => e instanceof RangeError && /out of range/.test(e.message),
  );
});

Deno.test("withDeadline() rejects naming what it waited for and runs onTimeout", async () => {
  const g = gate();
  let cleaned = false;
  const err = await withDeadline(g.wait, 30, "curl to exit", { onTimeout: () => (cleaned = true) })
    .then(() => undefined, (e: unknown) => e);
  g.release();
  assert.ok(err instanceof DeadlineError, String(err));
  assert.equal(err.message, "timed out after 0.03 s waiting for: curl to exit");
  assert.equal(err.what, "curl to exit");
  assert.ok(cleaned, "onTimeout ran");
});

Deno.test("waitFor() polls until the condition holds, or fails naming it", async () => {
  let n = 0;
  await waitFor("three polls", () => ++n >= 3, 1_000, 1);
  assert.equal(n, 3);
  await assert.rejects(
    waitFor("a condition that never holds", () => false, 30, 5),
    (e: unknown) =>
      e instanceof DeadlineError &&
      e.message === "timed out after 0.03 s waiting for: a condition that never holds",
  );
});

Deno.test("withBudget() fails an expired test with its name and the pending steps, after its cleanups", async () => {
  const g = gate();
  let cleanups = 0;
  const fn = withBudget(50, async () => {
    onTimeout(() => {
      cleanups++;
      g.release(); // what closing the server would do: the hung wait ends
    });
    await step("the server to start", Promise.resolve());
    await step("curl downloads through the tunnel", async () => {
      await step("curl -sS http://127.0.0.1/ to exit", g.wait);
    });
  });
  const err = await fn(fakeContext("curl download through the tunnel")).then(
    () => undefined,
    (e: unknown) => e,
  );
  assert.ok(err instanceof DeadlineError, String(err));
  const [first, second] = err.message.split("\n");
  assert.equal(
    first,
    "curl download through the tunnel: timed out after 0.05 s waiting for: " +
      "curl downloads through the tunnel; curl -sS http://127.0.0.1/ to exit",
  );
  assert.match(second!, /^\(test declared at tests\/support\/deadline_test\.ts:\d+\)$/);
  assert.equal(cleanups, 1);
});

Deno.test("withBudget() names the last finished step when the test hangs on an unnamed one", async () => {
  const g = gate();
  const fn = withBudget(30, async () => {
    onTimeout(() => g.release());
    await step("the pair to start", Promise.resolve());
    await g.wait;
  });
  const err = await fn(fakeContext("t")).then(() => undefined, (e: unknown) => e);
  assert.ok(err instanceof DeadlineError, String(err));
  assert.match(err.message, /^t: timed out after 0\.03 s waiting for: an unnamed step/);
  assert.match(err.message, /the last named wait that ended: the pair to start\)\n/);
});

Deno.test("withBudget() passes a test's own failure through, after its cleanups", async () => {
  let cleaned = false;
  const fn = withBudget(1_000, () => {
    onTimeout(() => (cleaned = true));
    throw new TypeError("Cannot read the reply: connection reset");
  });
  await assert.rejects(
    fn(fakeContext("t")),
    (e: unknown) => e instanceof TypeError && /connection reset/.test(e.message),
  );
  assert.equal(cleaned, true);
});

Deno.test("withBudget() leaves the cleanups of a passing test alone", async () => {
  let cleaned = false;
  await withBudget(1_000, () => {
    onTimeout(() => (cleaned = true));
  })(fakeContext("t"));
  assert.equal(cleaned, false);
});

test("test() runs its body under a budget", { budgetMs: 5_000 }, async () => {
  assert.equal(await step("a step", Promise.resolve(1)), 1);
});
