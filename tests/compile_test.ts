/**
 * The compile task: every shipped target is built with exactly the
 * permission flags the tests run main.ts under (tests/e2e/permissions_test.ts),
 * and DENORT_BIN (a local denort for machines that cannot download it) is
 * passed through to `deno compile`.
 */
import { strict as assert } from "node:assert";
import { compileArgs, PERMISSION_FLAGS, TARGETS } from "../scripts/compile.ts";
import { test } from "./support/deadline.ts";
import { spawnWithDeadline } from "./support/process.ts";

test("compile builds every OS target with exactly the tested permission flags", () => {
  const oses = new Set(
    TARGETS.map((t) => t.includes("windows") ? "windows" : t.includes("apple") ? "macos" : "linux"),
  );
  assert.deepEqual([...oses].sort(), ["linux", "macos", "windows"]);
  for (const t of TARGETS) {
    const args = compileArgs(t);
    assert.equal(args[0], "compile");
    const flags = args.filter((a) => a.startsWith("--allow-"));
    assert.deepEqual(flags, [...PERMISSION_FLAGS], `target ${t}`);
    assert.ok(!args.includes("-A") && !args.includes("--allow-all"));
    assert.ok(args.includes("--unstable-net"), "UDP ASSOCIATE needs Deno.listenDatagram");
    assert.equal(args[args.indexOf("--target") + 1], t);
    assert.ok(args.at(-1) === "main.ts");
    assert.match(
      args[args.indexOf("--output") + 1]!,
      t.includes("windows") ? /\.exe$/ : /nitrosocks-/,
    );
  }
});

/** Runs `scripts/compile.ts ARGS` under the task's permissions with `env` added. */
function runCompile(env: Record<string, string>, ...args: string[]): Promise<Deno.CommandOutput> {
  return spawnWithDeadline(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write=dist",
      "--allow-env=DENORT_BIN",
      "--allow-run",
      "scripts/compile.ts",
      ...args,
    ],
    env,
    stdout: "piped",
    stderr: "piped",
  }, 120_000).output;
}

/** `runCompile` with DENORT_BIN naming a runtime that does not exist. */
function compileWithMissingDenort(...args: string[]): Promise<Deno.CommandOutput> {
  return runCompile({ DENORT_BIN: "/nonexistent/denort" }, ...args);
}

test("compile refuses DENORT_BIN with several targets and explains", async () => {
  const out = await compileWithMissingDenort();
  assert.equal(out.code, 2);
  assert.match(new TextDecoder().decode(out.stderr), /DENORT_BIN serves one target; pass --target/);
});

test("compile with DENORT_BIN passes it on to deno compile for one target", async () => {
  const out = await compileWithMissingDenort("--target", "x86_64-unknown-linux-gnu");
  // deno compile tried the given runtime (it does not exist here) instead of downloading one.
  assert.notEqual(out.code, 0);
  const err = new TextDecoder().decode(out.stderr);
  // (Not just "DENORT_BIN": the task names it in every failure, passed through or not.)
  assert.match(err, /Could not find denort at '\/nonexistent\/denort'/, err);
});

test.slow("compile offline (denort unreachable, none cached) fails saying how to use DENORT_BIN", async () => {
  const denoDir = await Deno.makeTempDir();
  try {
    // An empty Deno cache and every proxy pointing at a closed port: nothing downloads.
    const out = await runCompile(
      {
        DENO_DIR: denoDir,
        HTTPS_PROXY: "http://127.0.0.1:9",
        HTTP_PROXY: "http://127.0.0.1:9",
        https_proxy: "http://127.0.0.1:9",
        http_proxy: "http://127.0.0.1:9",
        DENO_NO_UPDATE_CHECK: "1",
      },
      "--target",
      "x86_64-unknown-linux-gnu",
    );
    assert.notEqual(out.code, 0);
    const err = new TextDecoder().decode(out.stderr);
    assert.match(
      err,
      /compile: x86_64-unknown-linux-gnu failed \(exit \d+\)\. .*fetch denort-x86_64-unknown-linux-gnu\.zip of Deno \d+\.\d+\.\d+ on another machine, unzip it here and run: DENORT_BIN=\.\/denort deno task compile --target x86_64-unknown-linux-gnu/,
      err,
    );
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
});
