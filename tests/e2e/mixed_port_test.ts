/**
 * The client's SOCKS5 port is also an HTTP proxy (a mixed port, sniffed
 * from the first byte): curl with `-x http://` through CONNECT (`-p`) and
 * with absolute-form requests, the same SOCKS5 users as Basic
 * proxy credentials, SOCKS5 still served on the same port, and `git clone`
 * over git's dumb HTTP with `http_proxy=`.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { expectedSha256, startHttpTarget, toHex } from "../support/http_target.ts";
import { freePort, run, startPair } from "./_harness.ts";
import { PYTHON } from "../support/programs.ts";
import { test, waitFor } from "../support/deadline.ts";
import { readToEnd, writeAll } from "../support/io.ts";
import { serveConnections } from "../support/serve.ts";
import { type Spawned, spawnWithDeadline, waitListening } from "../support/process.ts";

async function sha256(b: Uint8Array): Promise<string> {
  return toHex(new Uint8Array(await crypto.subtle.digest("SHA-256", b as Uint8Array<ArrayBuffer>)));
}

test("curl -p -x http:// on the SOCKS5 port: CONNECT through the tunnel, SOCKS5 still served", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair();
  const n = 1024 * 1024 + 17;
  const r = await run("curl", [
    "-sS",
    "--max-time",
    "60",
    "-p",
    "-x",
    `http://127.0.0.1:${pair.socksPort}`,
    `${target.url}/bytes/${n}`,
  ], { timeoutMs: 90_000 });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await sha256(r.stdout), expectedSha256(n));
  const socks = await run("curl", [
    "-sS",
    "--max-time",
    "60",
    "--socks5-hostname",
    `127.0.0.1:${pair.socksPort}`,
    `${target.url}/bytes/1000`,
  ], { timeoutMs: 90_000 });
  assert.equal(socks.code, 0, socks.stderr);
  assert.equal(await sha256(socks.stdout), expectedSha256(1000));
  assert.equal(pair.serverEvents.of("stream_open").length, 2);
});

test("the mixed port asks for the SOCKS5 users' credentials over HTTP too", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair({ socksUsers: { carol: "pa55word" } });
  const args = (user: string[]) => [
    "-sS",
    "--max-time",
    "60",
    "-p",
    "-x",
    `http://127.0.0.1:${pair.socksPort}`,
    ...user,
    "-o",
    "/dev/null",
    "-w",
    "%{http_connect}",
    `${target.url}/bytes/10`,
  ];
  const none = await run("curl", args([]), { timeoutMs: 90_000 });
  assert.equal(new TextDecoder().decode(none.stdout), "407");
  const ok = await run("curl", args(["-U", "carol:pa55word"]), { timeoutMs: 90_000 });
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(new TextDecoder().decode(ok.stdout), "200");
});

test("curl -x http:// absolute-form on the SOCKS5 port: keep-alive across requests, exact bodies", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair();
  const n = 300_000;
  // Three URLs in one curl run: one client connection to the proxy, kept alive.
  const r = await run("curl", [
    "-sS",
    "--max-time",
    "60",
    "-x",
    `http://127.0.0.1:${pair.socksPort}`,
    "-w",
    "|%{http_code} %{num_connects}|",
    `${target.url}/hello`,
    `${target.url}/bytes/${n}`,
    `${target.url}/hello`,
  ], { timeoutMs: 90_000 });
  assert.equal(r.code, 0, r.stderr);
  const out = new TextDecoder("latin1").decode(r.stdout);
  const parts = out.split("|");
  assert.equal(parts[0], "hello from target\n");
  assert.equal(parts[1], "200 1");
  assert.equal(
    await sha256(
      r.stdout.subarray(
        parts[0]!.length + parts[1]!.length + 2,
        parts[0]!.length + parts[1]!.length + 2 + n,
      ),
    ),
    expectedSha256(n),
  );
  // The second and third requests reused the first connection (num_connects 0).
  assert.deepEqual(parts.filter((p) => /^\d{3} \d$/.test(p)), ["200 1", "200 0", "200 0"]);
  // Every request went through the tunnel, origin-form, as its own stream.
  assert.deepEqual(target.requests.map((q) => q.path), ["/hello", `/bytes/${n}`, "/hello"]);
  assert.equal(pair.serverEvents.of("stream_open").length, 3);
});

test("curl -x http:// POSTs a chunked body through the mixed port and gets it back exact", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair();
  const dir = await Deno.makeTempDir();
  try {
    const body = new Uint8Array(200_000).map((_, i) => (i * 31 + 7) & 0xff);
    await Deno.writeFile(`${dir}/body`, body);
    const r = await run("curl", [
      "-sS",
      "--max-time",
      "60",
      "-x",
      `http://127.0.0.1:${pair.socksPort}`,
      "-H",
      "Transfer-Encoding: chunked",
      "--data-binary",
      `@${dir}/body`,
      `${target.url}/echo`,
      // A GET after the chunked body, on the same kept-alive connection.
      "--next",
      "-sS",
      "-x",
      `http://127.0.0.1:${pair.socksPort}`,
      "-w",
      "|%{num_connects}",
      `${target.url}/hello`,
    ], { timeoutMs: 90_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await sha256(r.stdout.subarray(0, body.length)), await sha256(body));
    assert.equal(
      new TextDecoder().decode(r.stdout.subarray(body.length)),
      "hello from target\n|0",
    );
    assert.deepEqual(target.requests.map((q) => `${q.method} ${q.path}`), [
      "POST /echo",
      "GET /hello",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("a malformed chunked body gets 400 at once and ends its stream; the target waits for nothing", async () => {
  await using target = await startHttpTarget();
  await using pair = await startPair();
  using conn = await Deno.connect({ hostname: "127.0.0.1", port: pair.socksPort });
  // A good first chunk, then a size line that is not hex. The target (Deno.serve) has no body
  // timeout: without the 400 the answer would wait for it forever.
  await writeAll(
    conn,
    new TextEncoder().encode(
      `POST ${target.url}/echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n` +
        "3\r\nabc\r\nzz\r\nabc\r\n0\r\n\r\n",
    ),
  );
  const answer = new TextDecoder().decode(
    await readToEnd(conn, { ms: 20_000, what: "the answer to a malformed chunked body" }),
  );
  assert.match(answer, /^HTTP\/1\.1 400 Bad Request\r\n/);
  assert.match(answer, /\r\n\r\n400 Bad Request: the chunked request body is malformed\n$/);
  await waitFor("the server to open and close the request's stream", () => {
    return pair.serverEvents.of("stream_close").length === 1;
  }, 10_000);
  assert.equal(pair.serverEvents.of("stream_open").length, 1);
});

test("a target's response head over 64 KiB gets 502, also when its end comes in the read that crosses 64 KiB", async () => {
  // 60 KiB of header first; then, once the proxy has read them, 10 KiB more and the end of the
  // head: a check made only while no end was seen would pass this 70 KiB head on.
  const first = `HTTP/1.1 200 OK\r\nX-A: ${"a".repeat(60 * 1024)}\r\n`;
  const rest = `X-B: ${"b".repeat(10 * 1024)}\r\nContent-Length: 2\r\n\r\nhi`;
  await using target = serveConnections(
    Deno.listen({ hostname: "127.0.0.1", port: 0 }),
    async (c) => {
      await c.read(new Uint8Array(4096));
      await writeAll(c, new TextEncoder().encode(first));
      await new Promise((r) => setTimeout(r, 300));
      await writeAll(c, new TextEncoder().encode(rest));
    },
  );
  await using pair = await startPair();
  const r = await run("curl", [
    "-sS",
    "--max-time",
    "30",
    "-x",
    `http://127.0.0.1:${pair.socksPort}`,
    "-w",
    "|%{http_code}",
    `http://127.0.0.1:${target.port}/`,
  ], { timeoutMs: 60_000 });
  assert.equal(
    new TextDecoder().decode(r.stdout),
    "502 Bad Gateway: the target's response head is too large\n|502",
    r.stderr,
  );
});

test.slow("git clone http://… with http_proxy= on the mixed port fetches a repository through the tunnel", async () => {
  const dir = await Deno.makeTempDir({ prefix: "nitrosocks-git-" });
  const git = async (args: string[], cwd = dir, env: Record<string, string> = {}) => {
    const r = await run("git", args, {
      cwd,
      timeoutMs: 90_000,
      env: {
        HOME: dir,
        GIT_CONFIG_NOSYSTEM: "1",
        GIT_TERMINAL_PROMPT: "0",
        NO_PROXY: "",
        no_proxy: "",
        ...env,
      },
    });
    assert.equal(r.code, 0, `git ${args.join(" ")}: ${r.stderr}`);
    return new TextDecoder().decode(r.stdout);
  };
  const port = freePort();
  let server: Spawned | undefined;
  try {
    // A repository with two commits, published as a bare one for git's dumb HTTP.
    await git(["init", "-q", "-b", "main", "src"]);
    const src = `${dir}/src`;
    const id = ["-c", "user.name=T", "-c", "user.email=t@example.test"];
    await Deno.writeTextFile(`${src}/README`, "first\n");
    await git(["add", "README"], src);
    await git([...id, "commit", "-q", "-m", "one"], src);
    await Deno.writeTextFile(`${src}/data.bin`, "x".repeat(100_000));
    await git(["add", "data.bin"], src);
    await git([...id, "commit", "-q", "-m", "two"], src);
    await git(["clone", "-q", "--bare", "src", "www/repo.git"]);
    await git(["update-server-info"], `${dir}/www/repo.git`);
    server = spawnWithDeadline(
      PYTHON,
      {
        args: [
          "-m",
          "http.server",
          "--bind",
          "127.0.0.1",
          "--directory",
          `${dir}/www`,
          String(port),
        ],
        stdout: "null",
        stderr: "null",
      },
      120_000,
      "python3 -m http.server, stopped by the test",
    );
    await waitListening("127.0.0.1", port, "python3 -m http.server");
    await using pair = await startPair();
    await git(["clone", "-q", `http://127.0.0.1:${port}/repo.git`, "out"], dir, {
      http_proxy: `http://127.0.0.1:${pair.socksPort}`,
    });
    assert.equal(await Deno.readTextFile(`${dir}/out/README`), "first\n");
    assert.equal((await Deno.readTextFile(`${dir}/out/data.bin`)).length, 100_000);
    const log = await git(["log", "--format=%s"], `${dir}/out`);
    assert.deepEqual(log.trim().split("\n"), ["two", "one"]);
    // Every request git made went through the server (one stream per request).
    const dialed = pair.serverEvents.of("stream_open", (e) => e.target === `127.0.0.1:${port}`);
    assert.ok(dialed.length >= 3, `the server dialed the repository ${dialed.length} times`);
  } finally {
    server?.kill();
    await server?.output.catch(() => {});
    await Deno.remove(dir, { recursive: true });
  }
});
