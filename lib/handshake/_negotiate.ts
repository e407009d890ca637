/**
 * Algorithm names ↔ wire ids, and option checks shared by both engines.
 *
 * @module
 */
import {
  AEAD_IDS,
  AEAD_WIRE_IDS,
  type AeadId,
  KEX_IDS,
  KEX_WIRE_IDS,
  type KexId,
  PADDING_MODES,
  PADDING_WIRE_IDS,
  type PaddingMode,
} from "./constants.ts";

/** The KexId for a wire id, if we know it. */
export function kexFromWire(id: number): KexId | undefined {
  return KEX_IDS.find((k) => KEX_WIRE_IDS[k] === id);
}

/** The AeadId for a wire id, if we know it. */
export function aeadFromWire(id: number): AeadId | undefined {
  return AEAD_IDS.find((a) => AEAD_WIRE_IDS[a] === id);
}

/** The PaddingMode for a wire id, if we know it. */
export function paddingFromWire(id: number): PaddingMode | undefined {
  return PADDING_MODES.find((m) => PADDING_WIRE_IDS[m] === id);
}

/**
 * The record padding a session uses (section 4.7): the stronger of what the
 * client asks for and what the server is set to (none < random < bucket).
 * An unknown mode from the client counts as none.
 */
export function agreePadding(clientWire: number, server: PaddingMode | undefined): PaddingMode {
  const rank = (m: PaddingMode | undefined) => m === undefined ? 0 : PADDING_MODES.indexOf(m);
  const client = paddingFromWire(clientWire);
  return rank(client) >= rank(server) ? client ?? "none" : server!;
}

/** Checks a caller's padding mode (undefined passes: no extension). */
export function checkPaddingMode(v: PaddingMode | undefined): PaddingMode | undefined {
  if (v !== undefined && !PADDING_MODES.includes(v)) {
    throw new TypeError(
      `Cannot use record padding "${String(v)}": not one of ${PADDING_MODES.join(", ")}`,
    );
  }
  return v;
}

/** Checks a caller's list: non-empty, known names, no duplicates; returns a copy. */
export function checkList<T extends string>(
  what: string,
  list: readonly T[] | undefined,
  known: readonly T[],
): T[] {
  if (list === undefined) return [...known];
  if (list.length === 0) throw new RangeError(`Cannot use ${what} list: it is empty`);
  for (const v of list) {
    if (!known.includes(v)) {
      throw new TypeError(`Cannot use ${what} "${v}": not one of ${known.join(", ")}`);
    }
  }
  if (new Set(list).size !== list.length) {
    throw new TypeError(`Cannot use ${what} list: "${list.join(", ")}" has duplicates`);
  }
  return [...list];
}

/** Checks a padding maximum (0..255). */
export function checkPaddingMax(v: number | undefined, max: number): number {
  const n = v ?? max;
  if (!Number.isInteger(n) || n < 0 || n > max) {
    throw new RangeError(`Cannot use padding maximum ${n}: not an integer in 0..${max}`);
  }
  return n;
}

/** now() as a u64-safe integer number of milliseconds. */
export function clockMs(now: () => number): number {
  const t = Math.floor(now());
  if (!Number.isFinite(t)) throw new RangeError(`Cannot read clock: now() returned ${t}`);
  return Math.min(Math.max(t, 0), Number.MAX_SAFE_INTEGER);
}
