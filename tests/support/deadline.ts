/**
 * Deadlines for tests that touch sockets or processes, so that a hung test
 * fails with its name and what it waited for instead of stalling the run.
 *
 * Exports:
 * - `test(name, fn)`, `test(name, options, fn)`, `test({ name, fn, ... })`:
 *   `Deno.test` with a budget for the whole test (`budgetMs`, default
 *   {@linkcode DEFAULT_BUDGET_MS}); `test.slow(…)` the same with
 *   {@linkcode SLOW_BUDGET_MS}. When the budget runs out the test's
 *   registered cleanups run (servers close, processes are killed), the
 *   body gets a moment to unwind, and the test fails with `NAME: timed out
 *   after N s waiting for: WHAT`, WHAT being the named waits still pending
 *   (see below), and the file and line that declared the test.
 * - `testsWithBudget(ms)`: a `test` with another default budget.
 * - `withBudget(ms, fn)`: the wrapper `test` puts around `fn`, for
 *   `Deno.test({ name, fn: withBudget(ms, fn) })`.
 * - `withDeadline(promiseOrFn, ms, what, opts?)`: one wait with its own
 *   deadline; names the wait for the running test's report.
 * - `step(what, promiseOrFn)`: names a step or wait without a deadline of
 *   its own (the test's budget bounds it); helpers use it so reports say
 *   "curl … to exit" rather than nothing.
 * - `waitFor(what, cond, ms, everyMs?)`: polls `cond` until it holds.
 * - `onTimeout(cleanup)`: registers a cleanup that runs when the running
 *   test's budget expires or the test fails; returns the function that
 *   unregisters it.
 * - `DeadlineError`: what a missed deadline rejects with.
 * - `scaledMs(ms)`: a deadline scaled as below, for helpers with their own timers.
 *
 * Deadlines scale with `NITRO_TEST_DEADLINE_SCALE` (e.g. `3` on a slow
 * machine).
 *
 * @example
 * ```ts ignore
 * test("curl downloads through the tunnel", async () => {
 *   await using pair = await startPair();
 *   const r = await withDeadline(run("curl", args), 60_000, "curl to exit");
 * });
 * ```
 *
 * @module
 */

/** Budget of a {@linkcode test} that names none. */
export const DEFAULT_BUDGET_MS = 60_000;

/** Budget of a {@linkcode test}`.slow` (transfers of hundreds of MiB, subprocesses). */
export const SLOW_BUDGET_MS = 240_000;

/** How long a timed-out body may take to unwind after its cleanups ran. */
const GRACE_MS = 2_000;

/** A wait that did not end in time. */
export class DeadlineError extends Error {
  /** What was awaited. */
  readonly what: string;
  /** The deadline, in milliseconds (scaled). */
  readonly ms: number;

  /** `testName` defaults to the running {@linkcode test}'s. */
  constructor(what: string, ms: number, testName: string | undefined = running?.name) {
    const prefix = testName === undefined ? "" : `${testName}: `;
    super(`${prefix}timed out after ${seconds(ms)} waiting for: ${what}`);
    this.name = "DeadlineError";
    this.what = what;
    this.ms = ms;
  }
}

/** A test fn as `Deno.test` takes it. */
export type TestFn = (t: Deno.TestContext) => void | Promise<void>;

/** `Deno.test` options plus the test's budget. */
export interface DeadlineTestOptions extends Omit<Deno.TestDefinition, "name" | "fn"> {
  /** The whole test's budget in milliseconds; default {@linkcode DEFAULT_BUDGET_MS}. */
  budgetMs?: number;
}

/** The test running now and what it waits for. */
interface Running {
  name: string;
  /** Named waits still pending, by id, in the order they began. */
  waits: Map<number, string>;
  /** The last named wait that ended. */
  lastDone: string | undefined;
  cleanups: Set<() => unknown>;
}

let running: Running | undefined;
let nextWait = 0;
let scaleCache: number | undefined;

/**
 * `ms` times `NITRO_TEST_DEADLINE_SCALE` (default 1): every deadline here
 * goes through it, and helpers with deadlines of their own use it too.
 *
 * @example
 * ```ts ignore
 * setTimeout(kill, scaledMs(60_000));
 * ```
 */
export function scaledMs(ms: number): number {
  return ms * scale();
}

function scale(): number {
  if (scaleCache !== undefined) return scaleCache;
  scaleCache = 1;
  const variable = "NITRO_TEST_DEADLINE_SCALE";
  if (Deno.permissions.querySync({ name: "env", variable }).state === "granted") {
    const s = Number(Deno.env.get(variable) ?? "1");
    if (Number.isFinite(s) && s > 0) scaleCache = s;
  }
  return scaleCache;
}

function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

/**
 * Runs `fn` (or takes `p`) as a named step of the running test until it
 * settles, so that a budget running out can say what the test waited for.
 *
 * @example
 * ```ts ignore
 * const out = await step("sha256sum to exit", child.output());
 * await step("1 MiB each way through the tunnel", async () => { … });
 * ```
 */
export function step<T>(what: string, work: Promise<T> | (() => Promise<T>)): Promise<T> {
  const test = running;
  if (test === undefined) return typeof work === "function" ? work() : work;
  const id = nextWait++;
  test.waits.set(id, what);
  const done = () => {
    test.waits.delete(id);
    test.lastDone = what;
  };
  let p: Promise<T>;
  try {
    p = typeof work === "function" ? work() : work;
  } catch (e) {
    done();
    throw e;
  }
  p.then(done, done);
  return p;
}

/** Options for {@linkcode withDeadline}. */
export interface WithDeadlineOptions {
  /** Runs when the deadline passes (close the socket, kill the process). */
  onTimeout?: () => void;
}

/**
 * Resolves as `p` (or `fn()`) does; rejects with a {@linkcode DeadlineError}
 * naming `what` (and the running test) if it has not settled within `ms`.
 * The timer is cleared either way.
 *
 * @example
 * ```ts ignore
 * const conn = await withDeadline(socksConnect(port, "127.0.0.1", 80), 10_000, "the SOCKS5 reply");
 * ```
 */
export async function withDeadline<T>(
  p: Promise<T> | (() => Promise<T>),
  ms: number,
  what: string,
  opts: WithDeadlineOptions = {},
): Promise<T> {
  const test = running;
  const limit = scaledMs(ms);
  const work = step(what, p);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      try {
        opts.onTimeout?.();
      } finally {
        reject(new DeadlineError(what, limit, test?.name));
      }
    }, limit);
  });
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Polls `cond` every `everyMs` (default 10 ms) until it holds; throws a
 * {@linkcode DeadlineError} naming `what` after `ms`.
 *
 * @example
 * ```ts ignore
 * await waitFor("the server to drop the session", () => server.sessions.size === 0, 5_000);
 * ```
 */
export async function waitFor(
  what: string,
  cond: () => boolean | Promise<boolean>,
  ms: number,
  everyMs = 10,
): Promise<void> {
  const limit = scaledMs(ms);
  const until = performance.now() + limit;
  const poll = async () => {
    while (!(await cond())) {
      if (performance.now() > until) throw new DeadlineError(what, limit, running?.name);
      await new Promise((r) => setTimeout(r, everyMs));
    }
  };
  await step(what, poll());
}

/**
 * Registers `cleanup` to run if the running test's budget expires or the
 * test fails (kill a process, close a server), so that a hung or failed test
 * does not leave them behind.
 * Returns the function that unregisters it; call it once the resource is
 * released. Outside a {@linkcode test} it does nothing.
 *
 * @example
 * ```ts ignore
 * const forget = onTimeout(() => child.kill("SIGKILL"));
 * try { await child.status; } finally { forget(); }
 * ```
 */
export function onTimeout(cleanup: () => unknown): () => void {
  const test = running;
  if (test === undefined) return () => {};
  test.cleanups.add(cleanup);
  return () => test.cleanups.delete(cleanup);
}

/**
 * Wraps a test fn in a budget of `ms`: past it, the registered cleanups run
 * and the test fails naming the waits still pending. A test that fails by
 * itself has its cleanups run too.
 *
 * @example
 * ```ts ignore
 * Deno.test({ name: "a slow one", fn: withBudget(120_000, async () => {}) });
 * ```
 */
export function withBudget(ms: number, fn: TestFn): (t: Deno.TestContext) => Promise<void> {
  return budgeted(ms, fn, callerLocation());
}

function budgeted(
  ms: number,
  fn: TestFn,
  where: string | undefined,
): (t: Deno.TestContext) => Promise<void> {
  return async (t) => {
    const limit = scaledMs(ms);
    const test: Running = {
      name: t.name,
      waits: new Map(),
      lastDone: undefined,
      cleanups: new Set(),
    };
    running = test;
    const body = (async () => await fn(t))();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const expired = new Promise<"expired">((resolve) => {
      timer = setTimeout(() => resolve("expired"), limit);
    });
    try {
      const first = await Promise.race([
        body.then(() => "done" as const, () => "failed" as const),
        expired,
      ]);
      if (first === "done") return;
      if (first === "failed") {
        // Kill what the failed test left running, so it cannot hold up the next one.
        await unwind(test, body);
        await body;
      }
      const pending = [...test.waits.values()];
      const what = pending.length > 0
        ? pending.join("; ")
        : `an unnamed step (the last named wait that ended: ${test.lastDone ?? "none"})`;
      await unwind(test, body);
      // Deno reports the test at the line in this file that declared it: say where it is.
      const at = where === undefined ? "" : `\n(test declared at ${where})`;
      throw new DeadlineError(`${what}${at}`, limit, test.name);
    } finally {
      clearTimeout(timer);
      if (running === test) running = undefined;
    }
  };
}

/** "path:line" of the code that called the caller of this function (the test file). */
function callerLocation(): string | undefined {
  const frame = new Error().stack?.split("\n")[3];
  const m = frame === undefined ? null : /(file:\/\/[^\s)]+):(\d+):\d+\)?$/.exec(frame);
  if (m === null) return undefined;
  const path = decodeURIComponent(new URL(m[1]!).pathname);
  let cwd = "";
  try {
    cwd = `${Deno.cwd()}/`;
  } catch {
    // no read permission: the absolute path will do
  }
  return `${cwd !== "" && path.startsWith(cwd) ? path.slice(cwd.length) : path}:${m[2]}`;
}

/** Runs a timed-out or failed test's cleanups and gives its body a moment to end. */
async function unwind(test: Running, body: Promise<void>): Promise<void> {
  const cleanups = [...test.cleanups].reverse();
  test.cleanups.clear();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const grace = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, GRACE_MS);
  });
  try {
    await Promise.race([
      (async () => {
        for (const c of cleanups) {
          try {
            await c();
          } catch {
            // best effort: the test fails anyway
          }
        }
        await body.catch(() => {});
      })(),
      grace,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** `Deno.test`'s three forms, with `budgetMs` in the options. */
export interface DeadlineTest {
  (name: string, fn: TestFn): void;
  (name: string, options: DeadlineTestOptions, fn: TestFn): void;
  (def: DeadlineTestOptions & { name: string; fn: TestFn }): void;
}

/**
 * A {@linkcode DeadlineTest} whose budget defaults to `budgetMs`.
 *
 * @example
 * ```ts ignore
 * const verySlow = testsWithBudget(600_000);
 * ```
 */
export function testsWithBudget(budgetMs: number): DeadlineTest {
  return (
    a: string | (DeadlineTestOptions & { name: string; fn: TestFn }),
    b?: DeadlineTestOptions | TestFn,
    c?: TestFn,
  ): void => {
    let def: DeadlineTestOptions & { name: string; fn: TestFn };
    if (typeof a !== "string") def = a;
    else if (typeof b === "function") def = { name: a, fn: b };
    else if (b !== undefined && c !== undefined) def = { ...b, name: a, fn: c };
    else throw new TypeError(`Cannot declare test "${a}": no test function`);
    const { budgetMs: own, fn, ...rest } = def;
    Deno.test({ ...rest, fn: budgeted(own ?? budgetMs, fn, callerLocation()) });
  };
}

/**
 * `Deno.test` with a budget for the whole test (see the module doc):
 * {@linkcode DEFAULT_BUDGET_MS}, or `budgetMs` from the options, and
 * `test.slow` with {@linkcode SLOW_BUDGET_MS}. Same forms as `Deno.test`.
 * (Named `test` so that `deno fmt` keeps `test("…", async () => {` on one
 * line as it does `Deno.test`, and swapping one for the other touches one
 * line.)
 *
 * @example
 * ```ts ignore
 * test("nc carries a stream", async () => { … });
 * test.slow("256 MiB each way survive ten faults", async () => { … });
 * test("a long transfer", { budgetMs: 180_000 }, async () => { … });
 * test({ name: "chromium loads a page", ignore: !chromium, fn: loadPage });
 * ```
 */
export const test: DeadlineTest & { slow: DeadlineTest } = Object.assign(
  testsWithBudget(DEFAULT_BUDGET_MS),
  { slow: testsWithBudget(SLOW_BUDGET_MS) },
);
