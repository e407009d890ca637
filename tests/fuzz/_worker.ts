/**
 * The fuzzer's worker: runs campaigns for the targets it is given and posts
 * each result. Before every input it copies the input into shared memory and
 * bumps a counter, so the main thread can tell a run that never returns (an
 * endless loop cannot be timed from inside) and name the input that hung.
 *
 * @module
 */
import { campaign } from "./_engine.ts";
import { SHARED_HEADER_INTS, type WorkerJob } from "./_engine.ts";
import { targetNamed } from "./targets.ts";

const scope = self as unknown as {
  onmessage: (ev: MessageEvent<WorkerJob>) => void;
  postMessage(message: unknown): void;
};

scope.onmessage = async (ev) => {
  const job = ev.data;
  const header = new Int32Array(job.shared, 0, SHARED_HEADER_INTS);
  const body = new Uint8Array(job.shared, SHARED_HEADER_INTS * 4);
  for (let i = 0; i < job.targets.length; i++) {
    const t = targetNamed(job.targets[i]!);
    Atomics.store(header, 1, i);
    const result = await campaign(t, {
      seed: job.seed + i,
      untilMs: performance.now() + job.msPerTarget,
      maxRuns: job.maxRuns,
      beforeRun: (input) => {
        const n = Math.min(input.length, body.length);
        body.set(input.subarray(0, n));
        Atomics.store(header, 2, n);
        Atomics.add(header, 0, 1);
      },
    });
    scope.postMessage({ type: "result", result });
  }
  scope.postMessage({ type: "done" });
};
