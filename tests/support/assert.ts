/**
 * Assertions the tests share: an error of a given class whose message says
 * what went wrong, and the protocol error with its code.
 *
 * Exports:
 * - `assertThrowsWith(fn, ErrorClass, message)` → the error
 * - `assertRejectsWith(promiseOrFn, ErrorClass, message)` → the error
 * - `assertProtocolError(fn, code, message)`
 * - `isProtocolError(code)` → a predicate for `assert.throws`/`rejects`
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { ProtocolError } from "../../lib/errors.ts";

// deno-lint-ignore no-explicit-any
type ErrorClass<E extends Error> = abstract new (...args: any[]) => E;

function check<E extends Error>(
  e: unknown,
  Class: ErrorClass<E>,
  message: RegExp | string,
): asserts e is E {
  assert.ok(e instanceof Class, `expected ${Class.name}, got ${e instanceof Error ? e.stack : e}`);
  if (typeof message === "string") {
    assert.ok(e.message.includes(message), `"${e.message}" does not say "${message}"`);
  } else {
    assert.match(e.message, message);
  }
}

/**
 * Asserts that `fn` throws an instance of `Class` whose message matches
 * `message` (a RegExp, or a string it contains); returns the error.
 *
 * @example
 * ```ts ignore
 * assertThrowsWith(() => parseSize("12 parsecs"), RangeError, '"12 parsecs"');
 * ```
 */
export function assertThrowsWith<E extends Error>(
  fn: () => unknown,
  Class: ErrorClass<E>,
  message: RegExp | string,
): E {
  let thrown: unknown;
  try {
    fn();
  } catch (e) {
    thrown = e;
  }
  assert.ok(thrown !== undefined, `expected ${Class.name} (${message}), but nothing was thrown`);
  check(thrown, Class, message);
  return thrown;
}

/**
 * Asserts that `p` (or `fn()`) rejects with an instance of `Class` whose
 * message matches `message` (a RegExp, or a string it contains); returns
 * the error.
 *
 * @example
 * ```ts ignore
 * await assertRejectsWith(conn.write(bytes), Deno.errors.BrokenPipe, "closed for writing");
 * ```
 */
export async function assertRejectsWith<E extends Error>(
  p: Promise<unknown> | (() => Promise<unknown>),
  Class: ErrorClass<E>,
  message: RegExp | string,
): Promise<E> {
  const NOTHING = Symbol("resolved");
  const got = await (typeof p === "function" ? p() : p).then(() => NOTHING, (e: unknown) => e);
  assert.ok(got !== NOTHING, `expected ${Class.name} (${message}), but it resolved`);
  check(got, Class, message);
  return got;
}

/**
 * Asserts that `fn` throws a `ProtocolError` with `code` and a message
 * matching `message`.
 *
 * @example
 * ```ts ignore
 * assertProtocolError(() => decodeFrame(bytes), "MALFORMED", /trailing bytes/);
 * ```
 */
export function assertProtocolError(fn: () => unknown, code: string, message: RegExp): void {
  const e = assertThrowsWith(fn, ProtocolError, message);
  assert.equal(e.code, code);
}

/**
 * A predicate for `assert.throws`/`assert.rejects`: a `ProtocolError`
 * with `code`.
 *
 * @example
 * ```ts ignore
 * await assert.rejects(opened, isProtocolError("DECRYPT_FAILED"));
 * ```
 */
export function isProtocolError(code: string): (e: unknown) => boolean {
  return (e) => e instanceof ProtocolError && e.code === code;
}
