import assert from "node:assert/strict";
import { Reply, replyForError, replyName, Socks5Error } from "../../lib/socks5/mod.ts";
import { test } from "../support/deadline.ts";

test("replyForError() maps a real refused loopback connect to 5", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  const e = await Deno.connect({ hostname: "127.0.0.1", port }).then(
    (c) => (c.close(), undefined),
    (e: unknown) => e,
  );
  assert.ok(e instanceof Deno.errors.ConnectionRefused);
  assert.equal(replyForError(e), Reply.CONNECTION_REFUSED);
});

test("replyForError() maps Deno error classes and OS messages", () => {
  const cases: [unknown, number][] = [
    [new Socks5Error(Reply.NOT_ALLOWED, "Route refused"), 2],
    [new Deno.errors.ConnectionRefused("Connection refused (os error 111)"), 5],
    [new Deno.errors.TimedOut("timed out after 10 s connecting to x:1"), 4],
    [new DOMException("Signal timed out.", "TimeoutError"), 4],
    [new Deno.errors.NotFound("host not found: x.invalid"), 4],
    [new Error("failed to lookup address information: Name or service not known"), 4],
    [new Error("No route to host (os error 113)"), 4],
    [new Deno.errors.AddrNotAvailable("Cannot assign requested address (os error 99)"), 4],
    [new Deno.errors.NetworkUnreachable("Network is unreachable (os error 101)"), 3],
    [new Error("Network is unreachable (os error 101)"), 3],
    [new Deno.errors.PermissionDenied("Permission denied (os error 13)"), 2],
    [new Deno.errors.NotCapable('Requires net access to "x:1"'), 2],
    [new Deno.errors.ConnectionReset("Connection reset by peer (os error 104)"), 1],
    [new Deno.errors.InvalidData("TLS certificate not trusted by the profile's CA: …"), 1],
    [new Error("wrapped", { cause: new Deno.errors.ConnectionRefused("x") }), 5],
    [
      new Error("twice", { cause: new Error("wrapped", { cause: new Error("No route to host") }) }),
      4,
    ],
    ["a string", 1],
    [undefined, 1],
    [null, 1],
    [{ name: "ConnectionRefused" }, 5],
  ];
  for (const [e, reply] of cases) assert.equal(replyForError(e), reply, String(e));
  const loop: Error & { cause?: unknown } = new Error("loop");
  loop.cause = loop;
  assert.equal(replyForError(loop), 1);
});

test("replyName() uses the RFC 1928 wording", () => {
  assert.equal(replyName(Reply.SUCCEEDED), "succeeded");
  assert.equal(replyName(Reply.NOT_ALLOWED), "connection not allowed by ruleset");
  assert.equal(replyName(9), "unassigned reply 0x09");
});
