/**
 * The CLI under exactly the permissions `deno task compile` embeds in the
 * executables: the demo runs a real server and client, help and usage
 * errors exit with the documented codes.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { PERMISSION_FLAGS } from "../../scripts/compile.ts";
import { run, type RunResult, text } from "./_harness.ts";
import { test } from "../support/deadline.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

function nitrosocks(...args: string[]): Promise<RunResult> {
  return run(Deno.execPath(), ["run", "--quiet", ...PERMISSION_FLAGS, "main.ts", ...args], {
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    timeoutMs: 120_000,
  });
}

test.slow("main.ts demo runs under the shipped permissions and says what happened", async () => {
  const r = await nitrosocks("demo");
  assert.equal(r.code, 0, `stdout:\n${text(r)}\nstderr:\n${r.stderr}`);
  const out = text(r);
  for (
    const line of [
      /^1\. Making a server directory with fresh keys and a TLS CA in /m,
      /^2\. Server listening on TLS 127\.0\.0\.1:\d+$/m,
      /^3\. Client SOCKS5 on 127\.0\.0\.1:\d+; tunnel up in \d+ ms/m,
      /^4\. GET http:\/\/127\.0\.0\.1:\d+\/ through the tunnel: HTTP\/1\.1 200 OK in \d+ ms$/m,
      /^ {3}body: .*Hello through the tunnel/m,
      /^5\. A browser-like probe of the server itself gets an ordinary web site: HTTP 200 "Welcome to nginx!"$/m,
      /^Done: a real request went through a real NitroSocks server and client\.$/m,
    ]
  ) assert.match(out, line);
  assert.doesNotMatch(r.stderr, /PermissionDenied|NotCapable|Requires .* access/);
});

test.slow("main.ts --help lists the commands and exits 0", async () => {
  const r = await nitrosocks("--help");
  assert.equal(r.code, 0, r.stderr);
  assert.match(text(r), /^Usage: nitrosocks <command> \[options\]$/m);
  for (const cmd of ["init", "user", "server", "client", "demo"]) {
    assert.match(text(r), new RegExp(`^  ${cmd} `, "m"));
  }
});

test.slow("main.ts with an unknown command exits 2 and shows the usage", async () => {
  const r = await nitrosocks("nosuch");
  assert.equal(r.code, 2);
  assert.match(r.stderr, /unknown command "nosuch"/);
  assert.match(r.stderr, /Usage: nitrosocks <command>/);
});

test.slow("main.ts server --bogus exits 2 with the server usage", async () => {
  const r = await nitrosocks("server", "--bogus");
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--bogus/);
  assert.match(r.stderr, /Usage: nitrosocks server/);
});
