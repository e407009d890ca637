/**
 * One fuzzing campaign against one target: run the seeds, then mutated
 * inputs until the time or run budget is spent. An input whose run throws
 * something other than the target's documented refusals is a crash; one
 * whose run takes longer than `slowMs` (100 ms by default, the issue's
 * bound) is a hang. An input whose outcome signature is new joins the
 * corpus (bounded), so mutation builds on inputs that got further.
 *
 * @module
 */
import { errorSignature, type FuzzTarget } from "./targets.ts";
import { MAX_INPUT_BYTES, nextInput, Rng } from "./_mutate.ts";

/** What the fuzzer's main thread sends its worker (`_worker.ts`). */
export interface WorkerJob {
  targets: string[];
  msPerTarget: number;
  maxRuns: number;
  seed: number;
  /** `[beat, target index, input length]` as i32, then the input being run. */
  shared: SharedArrayBuffer;
}

/** Int32 slots before the input in `WorkerJob.shared`. */
export const SHARED_HEADER_INTS = 3;
/** Bytes of shared memory a job needs. */
export const SHARED_BYTES = SHARED_HEADER_INTS * 4 + MAX_INPUT_BYTES;

/** A crash or a hang, with the input that caused it. */
export interface Finding {
  target: string;
  kind: "crash" | "hang";
  /** The error (class, message, first stack frame) or the time taken. */
  detail: string;
  /** The input, hex. */
  input: string;
  ms: number;
}

/** Budget and hooks for {@linkcode campaign}. */
export interface CampaignOptions {
  seed: number;
  /** Stop at this `performance.now()`. */
  untilMs: number;
  /** Stop after this many inputs (seeds included). */
  maxRuns: number;
  /** An input slower than this is a hang (ms). */
  slowMs?: number;
  /** Called before each input (the worker's watchdog copy). */
  beforeRun?: (input: Uint8Array) => void;
}

/** What a campaign did. */
export interface CampaignResult {
  target: string;
  runs: number;
  corpus: number;
  signatures: number;
  slowestMs: number;
  findings: Finding[];
}

/** The most inputs kept in a target's corpus. */
export const MAX_CORPUS = 512;

const toHex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

/** Describes an unexpected error: class, message and the first stack frame in lib/ or tests/. */
export function describeCrash(e: unknown): string {
  if (!(e instanceof Error)) return `thrown ${typeof e}: ${String(e)}`;
  const frame = (e.stack ?? "").split("\n").find((l) => /\/(lib|tests)\//.test(l))?.trim();
  const msg = e.message.length > 200 ? `${e.message.slice(0, 200)}…` : e.message;
  return `${e.name}: ${msg}${frame === undefined ? "" : ` (${frame})`}`;
}

/**
 * Runs one input through `t`: `undefined` when it was fine (a result or a
 * documented refusal), else the crash, plus the outcome signature and time.
 */
export async function runOne(
  t: FuzzTarget,
  input: Uint8Array,
): Promise<{ signature: string; crash?: string; message?: string; ms: number }> {
  const start = performance.now();
  try {
    const signature = await t.run(input);
    return { signature, ms: performance.now() - start };
  } catch (e) {
    const ms = performance.now() - start;
    const message = e instanceof Error ? e.message : String(e);
    if (t.refusal(e)) return { signature: errorSignature(e), message, ms };
    return { signature: `crash:${errorSignature(e)}`, crash: describeCrash(e), message, ms };
  }
}

/** Fuzzes `t` within the budget in `o`. */
export async function campaign(t: FuzzTarget, o: CampaignOptions): Promise<CampaignResult> {
  const rng = new Rng(o.seed);
  const slowMs = o.slowMs ?? t.slowMs ?? 100;
  const corpus: Uint8Array[] = [];
  const seen = new Set<string>();
  const findings: Finding[] = [];
  const found = new Set<string>();
  let runs = 0;
  let slowest = 0;
  const seeds = await t.seeds();
  if (seeds.length === 0) throw new RangeError(`Cannot fuzz ${t.name}: it has no seeds`);
  const one = async (input: Uint8Array, fromSeed: boolean) => {
    o.beforeRun?.(input);
    let r = await runOne(t, input);
    runs++;
    // A slow run is timed twice more and its fastest counts, so a busy machine is not a hang.
    for (let k = 0; k < 2 && r.crash === undefined && r.ms > slowMs; k++) {
      const again = await runOne(t, input);
      if (again.ms < r.ms) r = again;
    }
    slowest = Math.max(slowest, r.ms);
    if (r.crash !== undefined && !found.has(r.signature)) {
      found.add(r.signature);
      findings.push({
        target: t.name,
        kind: "crash",
        detail: r.crash,
        input: toHex(input),
        ms: r.ms,
      });
    } else if (r.ms > slowMs && !found.has(`slow:${input.length >> 10}`)) {
      found.add(`slow:${input.length >> 10}`);
      findings.push({
        target: t.name,
        kind: "hang",
        detail: `${r.ms.toFixed(0)} ms for one ${input.length}-byte input (limit ${slowMs} ms)`,
        input: toHex(input),
        ms: r.ms,
      });
    }
    if (fromSeed || !seen.has(r.signature)) {
      seen.add(r.signature);
      if (corpus.length < MAX_CORPUS) corpus.push(input);
      else corpus[rng.below(MAX_CORPUS)] = input;
    }
  };
  for (const s of seeds) await one(s, true);
  while (runs < o.maxRuns && performance.now() < o.untilMs) {
    await one(nextInput(rng, corpus, t.dictionary, t.maxInput), false);
  }
  return {
    target: t.name,
    runs,
    corpus: corpus.length,
    signatures: seen.size,
    slowestMs: slowest,
    findings,
  };
}
