/**
 * Opening a part of `libcrypto` that must pass its known answers before it
 * is used (the curve and hash backends), and the hex helpers they use.
 *
 * @module
 */

/** Bytes from lower-case hex (known-answer constants only). */
export function unhex(h: string): Uint8Array {
  return Uint8Array.from(h.match(/../g) ?? [], (b) => parseInt(b, 16));
}

/** Whether `a` is the bytes of `hex` (false for undefined). */
export function same(a: Uint8Array | undefined, hex: string): boolean {
  if (a === undefined) return false;
  const b = unhex(hex);
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/**
 * `make(symbols)` over the library `name`, once `passes` says it gives the
 * known answers; else, having run `dispose` and closed the library, why not.
 */
export function openChecked<S extends Deno.ForeignLibraryInterface, T>(
  name: string,
  symbols: S,
  what: string,
  make: (s: Deno.DynamicLibrary<S>["symbols"]) => T,
  passes: (t: T) => boolean,
  dispose: (t: T) => void = () => {},
): T | string {
  let dl: Deno.DynamicLibrary<S>;
  try {
    dl = Deno.dlopen(name, symbols);
  } catch (e) {
    return `${name}: ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`;
  }
  let t: T | undefined;
  try {
    t = make(dl.symbols);
    if (passes(t)) return t;
    throw new Error(`${what} failed their known answers`);
  } catch (e) {
    if (t !== undefined) dispose(t);
    dl.close();
    return `${name}: ${e instanceof Error ? e.message : String(e)}`;
  }
}
