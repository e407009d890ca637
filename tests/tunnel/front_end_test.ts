/**
 * The local front ends (SOCKS5 and HTTP CONNECT listeners) over real
 * loopback sockets, with a connector standing in for the tunnel: both give
 * the same answer to a stream OPEN the tunnel did not answer in time (SOCKS5
 * reply 6 "TTL expired", HTTP 504 Gateway Timeout) and to any other failure
 * (reply 1, HTTP 502).
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { type Connector, type FrontEnd, serveSocks } from "../../lib/tunnel/dial.ts";
import { serveHttpConnect } from "../../lib/tunnel/http_connect.ts";
import { silentLogger } from "../../lib/observe/mod.ts";
import { Reply } from "../../lib/socks5/mod.ts";
import {
  httpConnect,
  HttpConnectError,
  socksConnect,
  SocksReplyError,
} from "../support/socks_client.ts";
import { test, withDeadline } from "../support/deadline.ts";

/** A connector that fails every open the way `fail` says, after a short wait. */
function failingConnector(fail: () => Error): Connector & { opens: number } {
  const c = {
    opens: 0,
    async open(): Promise<never> {
      c.opens++;
      await new Promise((r) => setTimeout(r, 20));
      throw fail();
    },
  };
  return c;
}

const timedOut = () => new Deno.errors.TimedOut("No reply from the server within 0.02 s");
const down = () => new Error("Cannot reach the server");

async function withFront(
  kind: "socks5" | "http",
  connector: Connector,
  body: (port: number) => Promise<void>,
): Promise<void> {
  const listen = { host: "127.0.0.1", port: 0 };
  const front: FrontEnd = kind === "socks5"
    ? serveSocks(listen, { connector, log: silentLogger })
    : serveHttpConnect(listen, { connector, log: silentLogger });
  try {
    await body(front.addr.port);
  } finally {
    await front.close();
  }
}

async function socksReply(port: number): Promise<number> {
  const err = await withDeadline(
    socksConnect(port, "127.0.0.1", 9).then((c) => {
      c.close();
      return undefined;
    }, (e: unknown) => e),
    5_000,
    "the SOCKS5 reply",
  );
  assert.ok(err instanceof SocksReplyError, `expected a failure reply, got ${err}`);
  return err.reply;
}

async function httpStatus(port: number): Promise<number> {
  const err = await withDeadline(
    httpConnect(port, "127.0.0.1", 9).then((c) => {
      c.close();
      return undefined;
    }, (e: unknown) => e),
    5_000,
    "the HTTP CONNECT response",
  );
  assert.ok(err instanceof HttpConnectError, `expected a failure status, got ${err}`);
  return err.status;
}

test("SOCKS5 front end: an OPEN that times out gets reply 6 (TTL expired)", async () => {
  const connector = failingConnector(timedOut);
  await withFront("socks5", connector, async (port) => {
    assert.equal(await socksReply(port), Reply.TTL_EXPIRED);
  });
  assert.equal(connector.opens, 1);
});

test("HTTP CONNECT front end: an OPEN that times out gets 504 Gateway Timeout", async () => {
  const connector = failingConnector(timedOut);
  await withFront("http", connector, async (port) => {
    assert.equal(await httpStatus(port), 504);
  });
  assert.equal(connector.opens, 1);
});

test("front ends: any other connector failure is reply 1 / HTTP 502", async () => {
  await withFront("socks5", failingConnector(down), async (port) => {
    assert.equal(await socksReply(port), Reply.GENERAL_FAILURE);
  });
  await withFront("http", failingConnector(down), async (port) => {
    assert.equal(await httpStatus(port), 502);
  });
});
