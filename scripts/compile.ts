/**
 * Builds self-contained `nitrosocks` executables for Linux, macOS and
 * Windows into `dist/` with `deno compile`, embedding exactly
 * {@link PERMISSION_FLAGS}. The tests run `main.ts` under the same flags, so
 * what the binary may do is what was tested.
 *
 * `deno compile` downloads Deno's `denort` runtime for each target; where
 * that is not reachable, set `DENORT_BIN` to a local denort binary (Deno
 * honours it; one binary serves one target, so combine it with `--target`).
 *
 * Usage: deno task compile [--target TRIPLE ...]
 *
 * @module
 */

import { PERMISSION_FLAGS, UNSTABLE_FLAGS } from "../lib/cli/permissions.ts";

export { PERMISSION_FLAGS, UNSTABLE_FLAGS };

/** Every target `deno compile` supports that we ship. */
export const TARGETS: readonly string[] = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
];

/** The `deno compile` argument list for one target. */
export function compileArgs(target: string): string[] {
  const ext = target.includes("windows") ? ".exe" : "";
  return [
    "compile",
    ...PERMISSION_FLAGS,
    // UDP sockets (SOCKS5 UDP ASSOCIATE) are behind Deno's unstable "net" flag; deno.json sets it too.
    ...UNSTABLE_FLAGS,
    "--target",
    target,
    "--output",
    `dist/nitrosocks-${target}${ext}`,
    "main.ts",
  ];
}

async function main(): Promise<number> {
  const args = Deno.args;
  const chosen: string[] = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === "--target" && args[i + 1] !== undefined) chosen.push(args[++i]!);
    else if (args[i] === "--help" || args[i] === "-h") {
      console.log(`Usage: deno task compile [--target TRIPLE ...]\nTargets: ${TARGETS.join(", ")}`);
      return 0;
    } else {
      console.error(`compile: unknown argument "${args[i]}"`);
      return 2;
    }
  }
  const targets = chosen.length > 0 ? chosen : [...TARGETS];
  if (Deno.env.get("DENORT_BIN") !== undefined && targets.length > 1) {
    console.error("compile: DENORT_BIN serves one target; pass --target TRIPLE matching it");
    return 2;
  }
  for (const t of targets) {
    console.log(`compile: ${t}`);
    const { code } = await new Deno.Command(Deno.execPath(), { args: compileArgs(t) }).spawn()
      .status;
    if (code !== 0) {
      console.error(
        `compile: ${t} failed (exit ${code}). deno compile downloads Deno's denort runtime for ` +
          "each target; where it cannot (offline, behind a proxy), fetch " +
          `denort-${t}.zip of Deno ${Deno.version.deno} on another machine, unzip it here and run: ` +
          `DENORT_BIN=./denort deno task compile --target ${t}`,
      );
      return code;
    }
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main());
