/**
 * Raw TCP through the tunnel with real tools: OpenBSD netcat as a SOCKS5
 * client (half-close included), and OpenSSH using it as its ProxyCommand
 * to log in to a local sshd.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { patternBytes } from "../support/http_target.ts";
import { readExact } from "../support/socks_client.ts";
import { firstMismatch, run, startEchoServer, startPair, text } from "./_harness.ts";
import { canRunSshd, sshVia, startSshd } from "./_sshd.ts";
import { test } from "../support/deadline.ts";

test("nc -X 5 carries a raw TCP stream both ways and propagates half-close", async () => {
  await using echo = startEchoServer();
  await using pair = await startPair();
  const data = patternBytes(12345, 3 * 1024 * 1024 + 7);
  const r = await run("nc", [
    "-N",
    "-w",
    "30",
    "-X",
    "5",
    "-x",
    `127.0.0.1:${pair.socksPort}`,
    "127.0.0.1",
    String(echo.port),
  ], { stdin: data, timeoutMs: 60_000, meaning: "the half-close went through both ways" });
  // nc exits only after our EOF went through the tunnel to the echo server
  // and the echo server's EOF came back the same way: `run` fails if it hangs.
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout.length, data.length);
  assert.equal(firstMismatch(r.stdout, data), -1);
  assert.equal(echo.accepted(), 1);
  assert.ok(pair.serverStreams() >= 1, "the stream went through the server");
});

test({
  name: "ssh with ProxyCommand 'nc -X 5' logs in to a local sshd through the tunnel",
  ignore: !(await canRunSshd()),
  async fn() {
    await using pair = await startPair();
    const sshd = await startSshd();
    try {
      const r = await run("ssh", [
        ...sshVia(pair.socksPort),
        "-o",
        "LogLevel=ERROR",
        "-o",
        "ConnectTimeout=30",
        "-i",
        sshd.identity,
        "-p",
        String(sshd.port),
        "root@127.0.0.1",
        "echo ok",
      ], { timeoutMs: 60_000 });
      const log = await sshd.close();
      assert.equal(r.code, 0, `${r.stderr}\nsshd: ${log}`);
      assert.equal(text(r), "ok\n");
      assert.match(log, /Accepted publickey for root from 127\.0\.0\.1/);
      assert.ok(pair.serverStreams() >= 1, "the session went through the tunnel");
    } finally {
      await sshd.close();
    }
  },
});

/**
 * An unencrypted SSH_MSG_DISCONNECT binary packet (RFC 4253 sections 6 and
 * 11.1): valid before key exchange, it makes the client stop at once.
 */
function disconnectPacket(description: string): Uint8Array {
  const d = new TextEncoder().encode(description);
  const payload = [1, 0, 0, 0, 11, ...u32(d.length), ...d, 0, 0, 0, 0];
  let pad = 8 - ((4 + 1 + payload.length) % 8);
  if (pad < 4) pad += 8;
  return Uint8Array.from([
    ...u32(1 + payload.length + pad),
    pad,
    ...payload,
    ...new Array<number>(pad).fill(0),
  ]);
}

function u32(v: number): number[] {
  return [v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
}

test({
  name: "ssh -v through 'nc -X 5' exchanges SSH banners with a server (no sshd needed)",
  async fn() {
    // A minimal SSH server: sends its identification string (RFC 4253
    // section 4.2), records the client's, then says goodbye.
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const banner = "SSH-2.0-NitroTestBanner_1.0";
    let clientBanner = "";
    const serve = (async () => {
      const conn = await listener.accept();
      try {
        await conn.write(new TextEncoder().encode(`${banner}\r\n`));
        const buf = new Uint8Array(256);
        let got = "";
        while (!got.includes("\n")) {
          const n = await conn.read(buf);
          if (n === null) break;
          got += new TextDecoder().decode(buf.subarray(0, n));
        }
        clientBanner = got.split("\r\n")[0] ?? "";
        await conn.write(disconnectPacket("bye from the test server"));
      } finally {
        conn.close();
      }
    })();
    await using pair = await startPair();
    try {
      const port = (listener.addr as Deno.NetAddr).port;
      const r = await run("ssh", [
        "-v",
        ...sshVia(pair.socksPort),
        "-p",
        String(port),
        "nobody@127.0.0.1",
        "true",
      ], { timeoutMs: 60_000 });
      await serve;
      assert.notEqual(r.code, 0); // the fake server ends the exchange
      assert.match(r.stderr, /bye from the test server/);
      assert.match(
        r.stderr,
        /Remote protocol version 2\.0, remote software version NitroTestBanner_1\.0/,
      );
      assert.match(clientBanner, /^SSH-2\.0-OpenSSH/);
      assert.ok(pair.serverStreams() >= 1, "the stream went through the tunnel");
    } finally {
      listener.close();
      await serve.catch(() => {});
    }
  },
});

test("a CONNECT naming 127.0.0.1 as a domain (ATYP 3, as Chromium sends it) connects", async () => {
  await using echo = startEchoServer();
  await using pair = await startPair();
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: pair.socksPort });
  try {
    const host = new TextEncoder().encode("127.0.0.1");
    const p = echo.port;
    await conn.write(Uint8Array.of(5, 1, 0));
    assert.deepEqual([...await readExact(conn, 2)], [5, 0]);
    await conn.write(Uint8Array.of(5, 1, 0, 3, host.length, ...host, p >> 8, p & 0xff));
    const reply = await readExact(conn, 10);
    assert.equal(reply[1], 0, `reply ${reply[1]} (RFC 1928 allows an address literal as a domain)`);
    await conn.write(new TextEncoder().encode("ping"));
    assert.equal(new TextDecoder().decode(await readExact(conn, 4)), "ping");
  } finally {
    conn.close();
  }
  assert.equal(echo.accepted(), 1);
});
