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

/** The permissions the product needs, and no more: network (it is a proxy
 * that dials arbitrary targets and listens locally), reading its config and
 * key files, writing them for `init` and `user add`, and loading the
 * system's OpenSSL `libcrypto` for the `openssl` crypto backend (`auto`
 * uses it when it loads; docs/CONFIG.md `crypto.backend`). */
export const PERMISSION_FLAGS: readonly string[] = [
  "--allow-net",
  "--allow-read",
  "--allow-write",
  // The npm yaml parser reads these two variables on every parse.
  "--allow-env=LOG_TOKENS,LOG_STREAM",
  // Not scoped to a path: libcrypto's location differs by OS and distribution.
  "--allow-ffi",
];

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
    "--unstable-net",
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
        `compile: ${t} failed (exit ${code}); if denort cannot be downloaded here, set DENORT_BIN`,
      );
      return code;
    }
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main());
