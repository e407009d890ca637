/**
 * A value the schema accepts always works: every window, stream-count and
 * resend-buffer limit set to its schema minimum on one side and its maximum
 * on the other (both ways round), and real bytes moved through a real
 * server and client. The bounds are read from `MUX_LIMITS`, the one source
 * the schema also imports, so a change to either is tested here.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { MUX_LIMITS } from "../../lib/mux/mod.ts";
import { parseServerConfig } from "../../lib/config/mod.ts";
import { patternBytes } from "../support/http_target.ts";
import { socksConnect } from "../support/socks_client.ts";
import { readToEnd, writeAll } from "../support/io.ts";
import { firstMismatch, startEchoServer, startPair } from "./_harness.ts";
import { test } from "../support/deadline.ts";
import { assertThrowsWith } from "../support/assert.ts";
import { ConfigError } from "../../lib/errors.ts";

const L = MUX_LIMITS;
const MiB = 1 << 20;

/** Server `limits:` and client `limits:` at one extreme. */
const SERVER_MIN = {
  stream_window: String(L.streamWindow.min),
  session_window: String(L.sessionWindow.min),
  max_streams_per_tunnel: String(L.maxStreams.min),
};
const SERVER_MAX = {
  stream_window: String(L.streamWindow.max),
  session_window: String(L.sessionWindow.max),
  max_streams_per_tunnel: String(L.maxStreams.max),
};
const CLIENT_MIN = {
  stream_window: String(L.streamWindow.min),
  session_window: String(L.sessionWindow.min),
  max_streams: String(L.maxStreams.min),
};
const CLIENT_MAX = {
  stream_window: String(L.streamWindow.max),
  session_window: String(L.sessionWindow.max),
  max_streams: String(L.maxStreams.max),
};
/** `session:` with the smallest resend buffer and re-key volume (a re-key every MiB). */
const SESSION_MIN = { resend_buffer: String(L.resendBufferBytes.min), rekey_bytes: "1MiB" };
const SESSION_MAX = { resend_buffer: String(L.resendBufferBytes.max) };

/** Echoes `bytes` through the pair's SOCKS5 port, reading while writing; returns what came back. */
async function echoThrough(socksPort: number, echoPort: number, bytes: Uint8Array) {
  const conn = await socksConnect(socksPort, "127.0.0.1", echoPort);
  const back = readToEnd(conn, { ms: 60_000, what: "the echo of every byte" });
  await writeAll(conn, bytes);
  await conn.closeWrite();
  const got = await back;
  conn.close();
  return got;
}

test.slow(
  "every window limit at its schema minimum and maximum moves real bytes through a real pair",
  async () => {
    await using echo = startEchoServer();
    const data = patternBytes(7, 6 * MiB + 13);
    const cases = [
      { name: "server min, client max", server: SERVER_MIN, client: CLIENT_MAX, min: "server" },
      { name: "server max, client min", server: SERVER_MAX, client: CLIENT_MIN, min: "client" },
    ];
    for (const c of cases) {
      await using pair = await startPair({
        transport: "tcp",
        serverLimits: c.server,
        clientLimits: c.client,
        serverSession: c.min === "server" ? SESSION_MIN : SESSION_MAX,
        clientSession: c.min === "client" ? SESSION_MIN : SESSION_MAX,
      });
      // The profile the client runs with carries the extremes (not defaults).
      const want = c.client === CLIENT_MIN ? L.streamWindow.min : L.streamWindow.max;
      assert.equal(pair.profile.limits.streamWindow, want, c.name);
      // Two streams one after the other: with max_streams 1 the second needs the first's slot.
      for (let i = 0; i < 2; i++) {
        const got = await echoThrough(pair.socksPort, echo.port, data);
        assert.equal(got.length, data.length, `${c.name}: stream ${i} length`);
        assert.equal(firstMismatch(got, data), -1, `${c.name}: stream ${i} bytes`);
      }
      assert.equal(pair.serverEvents.of("stream_open").length, 2, c.name);
      assert.equal(pair.clientEvents.of("link_down").length, 0, `${c.name}: no link lost`);
      assert.equal(pair.serverEvents.of("stream_refused").length, 0, c.name);
      if (c.min === "server") {
        // The server starts re-keys (checked each tick): at its rekey_bytes 1MiB one is due now.
        await pair.serverEvents.waitFor("rekey", { timeoutMs: 10_000 });
        await echoThrough(pair.socksPort, echo.port, data.subarray(0, MiB)).then((got) =>
          assert.equal(firstMismatch(got, data.subarray(0, MiB)), -1, `${c.name}: after re-key`)
        );
      }
    }
  },
);

test("one below the minimum and one above the maximum are refused when the file is read", () => {
  const files = (p: string) => (p.endsWith("server.key") ? "A".repeat(86) : "");
  const parse = (limits: string) =>
    parseServerConfig(
      `transport: tcp\nidentity: keys/server.key\nlimits: {${limits}}\n`,
      "server.yml",
      files,
    );
  parse(`stream_window: ${L.streamWindow.min}, session_window: ${L.sessionWindow.min}`);
  for (
    const bad of [
      `stream_window: ${L.streamWindow.min - 1}`,
      `stream_window: ${L.streamWindow.max + 1}`,
      `session_window: ${L.sessionWindow.min - 1}`,
      `session_window: ${L.sessionWindow.max + 1}`,
      `max_streams_per_tunnel: ${L.maxStreams.max + 1}`,
    ]
  ) {
    assertThrowsWith(() => parse(bad), ConfigError, /out of range/);
  }
});
