/**
 * Loading a crypto backend (lib/openssl/mod.ts): the usual library names,
 * the explicit library option, `auto` falling back silently without
 * `--allow-ffi` (and `openssl` saying to grant it), checked in child
 * processes under chosen permissions so nothing prompts.
 */
import assert from "node:assert/strict";
import { libcryptoCandidates, loadCryptoBackend, loadLibcrypto } from "../../lib/openssl/mod.ts";
import { describeCryptoBackend, webCryptoBackend } from "../../lib/record/mod.ts";
import { test } from "../support/deadline.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const PROBE = "tests/openssl/_probe.ts";
// Loaded before any test, as the CLI does at start-up: a library stays loaded for the process.
const OPENSSL = loadCryptoBackend("openssl");

/** Runs the probe under `flags`; returns what it printed. */
async function probe(flags: string[]): Promise<Record<string, string>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", "--no-prompt", ...flags, PROBE],
    cwd: ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, err);
  assert.equal(err, "", "nothing on stderr: no prompt, no warning");
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

test("loadCryptoBackend() gives openssl with --allow-ffi, webcrypto on request", () => {
  assert.equal(OPENSSL.name, "openssl");
  assert.match(describeCryptoBackend(OPENSSL), /^openssl \(libcrypto\S*, OpenSSL [3-9]\.\d+\.\d+/);
  // With --allow-ffi (the test task grants it) auto finds the same library, loaded once.
  assert.equal(loadCryptoBackend("auto"), OPENSSL);
  assert.equal(loadCryptoBackend("webcrypto"), webCryptoBackend);
  assert.throws(() => loadCryptoBackend("boringssl" as "auto"), TypeError);
  const r = loadLibcrypto();
  assert.ok(r.ok && r.backend === OPENSSL);
});

test("the library option loads a named libcrypto, and refuses a missing one", () => {
  const name = OPENSSL.detail.split(",")[0]!;
  assert.ok(libcryptoCandidates().includes(name), name);
  assert.equal(loadCryptoBackend("openssl", { library: name }), OPENSSL);

  const missing = "/nonexistent/dir/libcrypto.so.3";
  assert.throws(
    () => loadCryptoBackend("openssl", { library: missing }),
    (e: unknown) =>
      e instanceof Error && /^Cannot use crypto backend openssl: /.test(e.message) &&
      e.message.includes(missing),
  );
  const auto = loadCryptoBackend("auto", { library: missing });
  assert.equal(auto.name, "webcrypto");
  assert.ok(auto.fallbackReason?.includes(missing), auto.fallbackReason);
  assert.match(describeCryptoBackend(auto), /^webcrypto \(.*; auto: cannot use "\/nonexistent/);
});

test("a library that is not libcrypto is refused with the reason", () => {
  // libc loads but has no EVP functions.
  const libc = Deno.build.os === "linux" ? "libc.so.6" : undefined;
  if (libc === undefined) return;
  assert.throws(
    () => loadCryptoBackend("openssl", { library: libc }),
    /Cannot use crypto backend openssl: cannot use "libc\.so\.6"/,
  );
});

test("libcryptoCandidates() has the usual names for each OS", () => {
  assert.equal(libcryptoCandidates("linux")[0], "libcrypto.so.3");
  assert.equal(libcryptoCandidates("darwin")[0], "libcrypto.3.dylib");
  assert.ok(!libcryptoCandidates("darwin").some((n) => /(^|\/)libcrypto\.dylib$/.test(n)));
  assert.equal(libcryptoCandidates("windows")[0], "libcrypto-3-x64.dll");
  assert.ok(libcryptoCandidates("darwin").some((n) => n.startsWith("/opt/homebrew/")));
});

test("without --allow-ffi auto falls back silently and openssl says to grant it", async () => {
  const r = await probe([]);
  assert.match(r.auto!, /^webcrypto \(.*; auto: --allow-ffi is not granted/);
  assert.equal(r.default, "webcrypto");
  assert.match(r.openssl!, /^error: Cannot use crypto backend openssl: --allow-ffi is not granted/);
});

test("with --allow-ffi scoped to another file, auto falls back and openssl refuses", async () => {
  const r = await probe(["--allow-ffi=/nonexistent/libfoo.so"]);
  assert.match(r.auto!, /^webcrypto \(.*--allow-ffi is not granted/);
  assert.match(r.openssl!, /^error: .*--allow-ffi/);
});

test("with --allow-ffi auto is openssl; the record layer's default stays webcrypto until set", async () => {
  const r = await probe(["--allow-ffi"]);
  assert.match(r.auto!, /^openssl \(libcrypto/);
  assert.equal(r.default, "webcrypto");
  assert.equal(r.openssl, r.auto);
});
