/**
 * `deno task fuzz`: structure-aware mutation fuzzing of every decoder and
 * state machine (`tests/fuzz/targets.ts`), bounded in time and runs. Prints
 * the inputs run per target and every finding: a crash (an error that is
 * not the target's documented refusal) or a hang (one input over 100 ms; an
 * input that never returns is caught by a watchdog and named too). Exits 1
 * when anything was found. A finding is fixed, then its input goes into
 * `tests/vectors/fuzz_regressions_v1.json`, which
 * `tests/fuzz/regressions_test.ts` replays in the normal test suite.
 *
 * Usage: deno task fuzz [--seconds N] [--runs N] [--target NAME]... [--seed N] [--out FILE]
 *
 * @module
 */
import {
  type CampaignResult,
  type Finding,
  SHARED_BYTES,
  SHARED_HEADER_INTS,
  type WorkerJob,
} from "./_engine.ts";
import { targetNamed, TARGETS } from "./targets.ts";

const USAGE = `Usage: deno task fuzz [options]

Fuzzes every decoder and state machine with inputs mutated from the test
vectors and generated messages; prints inputs run per target and findings.

Options:
  --seconds N    total time budget, shared by the targets (default 60)
  --runs N       at most N inputs per target (default unlimited)
  --target NAME  fuzz only this target (repeatable); one of:
                 ${TARGETS.map((t) => t.name).join(", ")}
  --seed N       PRNG seed, for a repeatable run (default: time-based)
  --out FILE     also write the findings as JSON to FILE
  --help         this text

Exit status: 0 nothing found, 1 findings, 2 bad arguments.`;

/** A run that has not returned after this long is an endless loop (ms). */
const WATCHDOG_MS = 5_000;

interface Args {
  seconds: number;
  runs: number;
  targets: string[];
  seed: number;
  out: string | undefined;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    seconds: 60,
    runs: Infinity,
    targets: [],
    seed: Date.now() % 2 ** 31,
    out: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === "--help" || flag === "-h") {
      console.log(USAGE);
      Deno.exit(0);
    }
    const value = argv[++i];
    if (value === undefined) throw new TypeError(`Option ${flag} needs a value (see --help)`);
    const num = () => {
      const n = Number(value);
      if (!Number.isFinite(n) || n <= 0) {
        throw new TypeError(`Option ${flag}: "${value}" is not a positive number`);
      }
      return n;
    };
    if (flag === "--seconds") a.seconds = num();
    else if (flag === "--runs") a.runs = Math.floor(num());
    else if (flag === "--seed") a.seed = Math.floor(num());
    else if (flag === "--target") a.targets.push(targetNamed(value).name);
    else if (flag === "--out") a.out = value;
    else throw new TypeError(`Unknown option "${flag}" (see --help)`);
  }
  if (a.targets.length === 0) a.targets = TARGETS.map((t) => t.name);
  return a;
}

/** Runs `targets` in a worker; resolves with the results and any watchdog findings. */
function runWorker(
  targets: string[],
  a: Args,
  msPerTarget: number,
): Promise<{ results: CampaignResult[]; hung?: Finding; remaining: string[] }> {
  const shared = new SharedArrayBuffer(SHARED_BYTES);
  const header = new Int32Array(shared, 0, SHARED_HEADER_INTS);
  const worker = new Worker(new URL("./_worker.ts", import.meta.url), { type: "module" });
  const results: CampaignResult[] = [];
  return new Promise((resolve) => {
    let lastBeat = -1;
    let lastChange = performance.now();
    const finish = (hung?: Finding) => {
      clearInterval(watchdog);
      worker.terminate();
      const at = results.length + (hung === undefined ? 0 : 1);
      resolve({ results, ...(hung === undefined ? {} : { hung }), remaining: targets.slice(at) });
    };
    const watchdog = setInterval(() => {
      const beat = Atomics.load(header, 0);
      if (beat !== lastBeat) {
        lastBeat = beat;
        lastChange = performance.now();
        return;
      }
      if (performance.now() - lastChange < WATCHDOG_MS) return;
      const n = Atomics.load(header, 2);
      const input = new Uint8Array(shared, SHARED_HEADER_INTS * 4, n).slice();
      finish({
        target: targets[Atomics.load(header, 1)]!,
        kind: "hang",
        detail: `no return within ${WATCHDOG_MS} ms (endless loop?)`,
        input: Array.from(input, (x) => x.toString(16).padStart(2, "0")).join(""),
        ms: WATCHDOG_MS,
      });
    }, 250);
    worker.onmessage = (ev: MessageEvent<{ type: string; result?: CampaignResult }>) => {
      if (ev.data.type === "result") results.push(ev.data.result!);
      else finish();
    };
    worker.onerror = (ev) => {
      ev.preventDefault();
      console.error(`fuzz worker failed: ${ev.message}`);
      finish();
    };
    const job: WorkerJob = { targets, msPerTarget, maxRuns: a.runs, seed: a.seed, shared };
    worker.postMessage(job);
  });
}

async function main(): Promise<number> {
  let a: Args;
  try {
    a = parseArgs(Deno.args);
  } catch (e) {
    console.error(e instanceof Error ? e.message : String(e));
    return 2;
  }
  const msPerTarget = (a.seconds * 1000) / a.targets.length;
  console.log(
    `fuzzing ${a.targets.length} targets, ${(msPerTarget / 1000).toFixed(1)} s each` +
      `${Number.isFinite(a.runs) ? `, at most ${a.runs} inputs each` : ""}, seed ${a.seed}`,
  );
  const results: CampaignResult[] = [];
  const findings: Finding[] = [];
  let todo = a.targets;
  while (todo.length > 0) {
    const r = await runWorker(todo, a, msPerTarget);
    results.push(...r.results);
    if (r.hung !== undefined) findings.push(r.hung);
    todo = r.remaining;
  }
  console.log("\ntarget              inputs  corpus  outcomes  slowest ms  findings");
  for (const r of results) {
    findings.push(...r.findings);
    console.log(
      `${r.target.padEnd(18)} ${String(r.runs).padStart(7)} ${String(r.corpus).padStart(7)} ` +
        `${String(r.signatures).padStart(9)} ${r.slowestMs.toFixed(1).padStart(11)} ` +
        `${String(r.findings.length).padStart(9)}`,
    );
  }
  const total = results.reduce((n, r) => n + r.runs, 0);
  console.log(`\n${total} inputs, ${findings.length} findings`);
  for (const f of findings) {
    const shown = f.input.length > 200
      ? `${f.input.slice(0, 200)}… (${f.input.length / 2} bytes)`
      : f.input;
    console.log(`\n[${f.kind}] ${f.target}: ${f.detail}\n  input: ${shown}`);
  }
  if (a.out !== undefined) {
    await Deno.writeTextFile(a.out, JSON.stringify(findings, null, 2) + "\n");
  }
  return findings.length > 0 ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
