/**
 * `limits.idle_timeout` closes idle tunnels, never idle streams: an ssh
 * session through the tunnel that sends nothing for four idle timeouts
 * still works (TCP-like: a stream lives while both ends do), and once no
 * stream is open the server closes the tunnel after the timeout with a
 * `tunnel_idle` event and a release; the client opens a fresh one for the
 * next request.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { run, startPair, text } from "./_harness.ts";
import { canRunSshd, sshVia, startSshd } from "./_sshd.ts";
import { test } from "../support/deadline.ts";

const IDLE_MS = 1000;

test.slow({
  name:
    "an ssh session idle past idle_timeout lives on; a tunnel with no streams then closes, with an event",
  ignore: !(await canRunSshd()),
  async fn() {
    const sshd = await startSshd();
    try {
      // lazy: the tunnel opens with the first request, so it is never idle before ssh starts.
      await using pair = await startPair({
        transport: "tcp",
        lazy: true,
        serverLimits: { idle_timeout: `${IDLE_MS}ms` },
      });
      const ssh = (command: string) =>
        run("ssh", [
          ...sshVia(pair.socksPort),
          "-o",
          "LogLevel=ERROR",
          "-o",
          "ServerAliveInterval=0",
          "-i",
          sshd.identity,
          "-p",
          String(sshd.port),
          "root@127.0.0.1",
          command,
        ], { timeoutMs: 60_000, meaning: "the ssh session through the tunnel ended" });

      // Silent for 4 s (four idle timeouts) in the middle of the session.
      const r = await ssh("echo before; sleep 4; echo still-here");
      assert.equal(r.code, 0, r.stderr);
      assert.equal(text(r), "before\nstill-here\n");
      const closes = await pair.serverEvents.waitFor("stream_close", { timeoutMs: 10_000 });
      assert.equal(closes.length, 1);
      assert.doesNotMatch(closes[0]!.reason, /idle/, "the stream ended on its own");

      // No stream now: the server closes the tunnel after idle_timeout, and says so.
      const [idle] = await pair.serverEvents.waitFor("tunnel_idle", { timeoutMs: 10_000 });
      assert.equal(idle!.user, "alice");
      assert.equal(idle!.idleMs, IDLE_MS);
      // Not before: the timer starts when the last stream is gone (one tick, 250 ms, of slack).
      assert.ok(idle!.time - closes[0]!.time >= IDLE_MS - 250, "closed before idle_timeout");
      const [end] = await pair.serverEvents.waitFor("session_end", { timeoutMs: 10_000 });
      assert.equal(end!.graceful, true);
      await pair.clientEvents.waitFor("release", {
        match: (e) => e.by === "peer",
        timeoutMs: 10_000,
      });

      // The next request opens a fresh tunnel.
      const again = await ssh("echo again");
      assert.equal(again.code, 0, again.stderr);
      assert.equal(text(again), "again\n");
      assert.equal(pair.serverEvents.of("session_start").length, 2);
    } finally {
      await sshd.close();
    }
  },
});
