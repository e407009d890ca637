/**
 * Error paths through a real client and server, each with the exact SOCKS5
 * reply code (RFC 1928 section 6) or RFC 1929 status an application sees.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { readExact, socksConnect, SocksReplyError } from "../support/socks_client.ts";
import { rawHttpRequest, startHttpTarget } from "../support/http_target.ts";
import { freePort, run, startEchoServer, startPair, text } from "./_harness.ts";
import { test } from "../support/deadline.ts";
import { readToEnd as readAll } from "../support/io.ts";

const SANITIZE = { sanitizeOps: true, sanitizeResources: true };

async function write(conn: Deno.Conn, bytes: number[]): Promise<void> {
  const b = Uint8Array.from(bytes);
  let o = 0;
  while (o < b.length) o += await conn.write(b.subarray(o));
}

/** Everything the peer sends until it closes (10 s at most). */
function readToEnd(conn: Deno.Conn): Promise<Uint8Array> {
  return readAll(conn, { ms: 10_000, what: "the client to answer and close" });
}

async function replyCode(
  socksPort: number,
  host: string,
  port: number,
  opts: { username?: string; password?: string } = {},
): Promise<number> {
  try {
    const conn = await socksConnect(socksPort, host, port, opts);
    conn.close();
    return 0;
  } catch (e) {
    if (e instanceof SocksReplyError) return e.reply;
    throw e;
  }
}

test(
  "SOCKS5: a closed port on the server's side gets reply 5 (connection refused)",
  SANITIZE,
  async () => {
    await using pair = await startPair({ fastOpen: false });
    const closed = freePort();
    assert.equal(await replyCode(pair.socksPort, "127.0.0.1", closed), 5);
    const refused = pair.serverEvents.of("stream_refused");
    assert.deepEqual(refused.map((e) => [e.target, e.reply]), [[`127.0.0.1:${closed}`, 5]]);
    assert.match(refused[0]!.reason, /^dial 127\.0\.0\.1:\d+ failed: /);
  },
);

test(
  "SOCKS5 fast open (the default): a closed port shows as a closed connection, the log says why",
  SANITIZE,
  async () => {
    await using pair = await startPair();
    const closed = freePort();
    // Success comes at once; the request rides behind the OPEN; the server's
    // failure reply then closes the application's connection without data.
    const conn = await socksConnect(pair.socksPort, "127.0.0.1", closed);
    await write(conn, [...new TextEncoder().encode("GET / HTTP/1.0\r\n\r\n")]).catch(() => {});
    const got = await readToEnd(conn);
    conn.close();
    assert.equal(got.length, 0);
    const refused = await pair.serverEvents.waitFor("stream_refused", { timeoutMs: 5_000 });
    assert.deepEqual(refused.map((e) => [e.target, e.reply]), [[`127.0.0.1:${closed}`, 5]]);
    assert.match(refused[0]!.reason, /^dial 127\.0\.0\.1:\d+ failed: /);
    // What the client's log says about it is the subject here: it stays on the log text.
    const lines = pair.logs.grep(new RegExp(`127\\.0\\.0\\.1:${closed}: connection refused`));
    assert.equal(lines.length, 1, pair.logs.lines.join("\n"));
    assert.match(lines[0]!, /\[client/);
  },
);

const canUnshare = (await run("unshare", ["-n", "true"], { timeoutMs: 10_000 }).catch(() => null))
  ?.code === 0;

test({
  name: "SOCKS5: an unresolvable name gets reply 4, an unreachable network reply 3",
  ignore: !canUnshare,
  ...SANITIZE,
  async fn() {
    // In a network namespace of its own (loopback only): the lookup fails
    // here and never reaches a real resolver; 192.0.2.1 has no route.
    const script = new URL("./_netns_dns.ts", import.meta.url).pathname;
    const deno = Deno.execPath();
    const r = await run("unshare", [
      "-n",
      "sh",
      "-c",
      'ip link set lo up && exec "$0" run --allow-net --allow-read --allow-write --allow-env "$1" nonexistent.invalid:80 192.0.2.1:80',
      deno,
      script,
    ], { timeoutMs: 60_000, cwd: new URL("../..", import.meta.url).pathname });
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(text(r)) as {
      replies: Record<string, number>;
      refused: [string, number, string][];
    };
    assert.deepEqual(out.replies, { "nonexistent.invalid:80": 4, "192.0.2.1:80": 3 });
    // The server refused both streams, each with the reply the application saw.
    assert.deepEqual(out.refused.map(([target, reply]) => [target, reply]), [
      ["nonexistent.invalid:80", 4],
      ["192.0.2.1:80", 3],
    ]);
    assert.ok(out.refused.every(([, , reason]) => /^dial .* failed: /.test(reason)), text(r));
  },
});

test(
  "SOCKS5: a destination outside the user's routes gets reply 2 (not allowed)",
  SANITIZE,
  async () => {
    await using target = await startHttpTarget();
    await using echo = startEchoServer();
    await using pair = await startPair({ routes: [`127.0.0.1:${target.port}`], fastOpen: false });
    // Allowed: the target's port.
    const conn = await socksConnect(pair.socksPort, "127.0.0.1", target.port);
    try {
      const res = await rawHttpRequest(conn, { path: "/hello" });
      assert.equal(res.status, 200);
    } finally {
      conn.close();
    }
    // Refused: another port on the same host (which does listen), and ::1.
    assert.equal(await replyCode(pair.socksPort, "127.0.0.1", echo.port), 2);
    assert.equal(await replyCode(pair.socksPort, "::1", target.port), 2);
    assert.equal(echo.accepted(), 0, "the server never dialed the refused destination");
    const notAllowed = pair.serverEvents.of(
      "stream_refused",
      (e) => /^route tcp:127\.0\.0\.1:\d+ not allowed$/.test(e.reason),
    );
    assert.deepEqual(notAllowed.map((e) => [e.target, e.reply]), [[`127.0.0.1:${echo.port}`, 2]]);
  },
);

test("SOCKS5: malformed requests are refused by the client", SANITIZE, async () => {
  await using echo = startEchoServer();
  await using pair = await startPair();
  const port = echo.port;

  // Version 4 greeting: at most "no acceptable method", then a clean close.
  let conn = await Deno.connect({ hostname: "127.0.0.1", port: pair.socksPort });
  await write(conn, [4, 1, 0]);
  const answer = await readToEnd(conn);
  conn.close();
  assert.ok(answer.length === 0 || (answer.length === 2 && answer[1] === 0xff), `got ${answer}`);

  // BIND: reply 7 (command not supported).
  conn = await Deno.connect({ hostname: "127.0.0.1", port: pair.socksPort });
  await write(conn, [5, 1, 0]);
  assert.deepEqual([...await readExact(conn, 2)], [5, 0]);
  await write(conn, [5, 2, 0, 1, 127, 0, 0, 1, port >> 8, port & 0xff]);
  let reply = await readToEnd(conn);
  conn.close();
  assert.equal(reply[0], 5);
  assert.equal(reply[1], 7);

  // Address type 9: reply 8 (address type not supported).
  conn = await Deno.connect({ hostname: "127.0.0.1", port: pair.socksPort });
  await write(conn, [5, 1, 0]);
  assert.deepEqual([...await readExact(conn, 2)], [5, 0]);
  await write(conn, [5, 1, 0, 9, 127, 0, 0, 1, port >> 8, port & 0xff]);
  reply = await readToEnd(conn);
  conn.close();
  assert.equal(reply[0], 5);
  assert.equal(reply[1], 8);

  assert.equal(echo.accepted(), 0, "no malformed request reached a destination");
});

test(
  "SOCKS5: a wrong password gets RFC 1929 status 1, the right one connects",
  SANITIZE,
  async () => {
    await using echo = startEchoServer();
    await using pair = await startPair({ socksUsers: { app: "s3cret pass" } });
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: pair.socksPort });
    await write(conn, [5, 1, 2]);
    assert.deepEqual([...await readExact(conn, 2)], [5, 2]);
    const user = [..."app"].map((c) => c.charCodeAt(0));
    const pass = [..."wrong"].map((c) => c.charCodeAt(0));
    await write(conn, [1, user.length, ...user, pass.length, ...pass]);
    const status = await readToEnd(conn);
    conn.close();
    assert.deepEqual([...status], [1, 1]);

    assert.equal(await replyCode(pair.socksPort, "127.0.0.1", echo.port), 0xff, "no auth offered");
    const ok = await socksConnect(pair.socksPort, "127.0.0.1", echo.port, {
      username: "app",
      password: "s3cret pass",
    });
    await write(ok, [1, 2, 3]);
    assert.deepEqual([...await readExact(ok, 3)], [1, 2, 3]);
    ok.close();
  },
);

test(
  "SOCKS5: with the server down the client answers 1 and logs what to check",
  SANITIZE,
  async () => {
    await using echo = startEchoServer();
    const down = freePort();
    await using pair = await startPair({ client: { server: { host: "127.0.0.1", port: down } } });
    assert.equal(await replyCode(pair.socksPort, "127.0.0.1", echo.port), 1);
    const lines = pair.logs.grep(new RegExp(`Cannot reach the server at 127\\.0\\.0\\.1:${down}`));
    assert.ok(lines.length >= 2, pair.logs.lines.join("\n")); // at start and at the request
    assert.match(lines.at(-1)!, /connection refused/);
    assert.match(lines.at(-1)!, /check that the NitroSocks server is running/);
    assert.equal(echo.accepted(), 0);
  },
);
