/**
 * `DatagramSender` (lib/tunnel/udp_sender.ts): one send in flight per
 * socket, the rest in order behind it, copied, bounded.
 */
import { strict as assert } from "node:assert";
import { DatagramSender, SEND_QUEUE_MAX } from "../../lib/tunnel/udp_sender.ts";

/** A socket whose sends finish only when the test says so; it records what was sent, in order. */
function fakeSocket() {
  const sent: string[] = [];
  const finish: (() => void)[] = [];
  let inFlight = 0;
  let most = 0;
  const sock = {
    send(p: Uint8Array) {
      sent.push(new TextDecoder().decode(p));
      inFlight++;
      most = Math.max(most, inFlight);
      return new Promise<number>((r) =>
        finish.push(() => {
          inFlight--;
          r(p.length);
        })
      );
    },
  } as unknown as Deno.DatagramConn;
  return { sock, sent, finish, most: () => most };
}

const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port: 9 };
const settle = () => new Promise((r) => setTimeout(r, 0));

Deno.test("DatagramSender sends in the order given, one at a time, from copies", async () => {
  const f = fakeSocket();
  const s = new DatagramSender(f.sock);
  const buf = new TextEncoder().encode("a0");
  assert.ok(s.send(buf, to));
  buf[1] = 0x39; // the caller reuses its buffer: "a9"
  for (let i = 1; i < 5; i++) assert.ok(s.send(buf.slice(0, 1).fill(0x62 + i - 1), to));
  buf[0] = 0x7a; // changing it after queueing changes nothing queued
  for (let i = 0; i < 5; i++) {
    await settle();
    f.finish.shift()?.();
  }
  await settle();
  // The first went out at once (the socket read it then); the rest were copied when queued.
  assert.deepEqual(f.sent, ["a0", "b", "c", "d", "e"]);
  assert.equal(f.most(), 1);
});

Deno.test("DatagramSender drops past its queue bound and goes on after a failed send", async () => {
  const f = fakeSocket();
  let failures = 0;
  const s = new DatagramSender(
    {
      send: (
        p: Uint8Array,
      ) => (p[0] === 0x78 ? Promise.reject(new Error("no")) : f.sock.send(p, to)),
    } as unknown as Deno.DatagramConn,
    () => failures++,
  );
  assert.ok(s.send(new Uint8Array([0x78]), to)); // fails
  for (let i = 0; i < SEND_QUEUE_MAX; i++) assert.ok(s.send(new Uint8Array([0x61]), to));
  assert.equal(s.send(new Uint8Array([0x61]), to), false);
  assert.equal(s.dropped, 1);
  while (f.sent.length < SEND_QUEUE_MAX) {
    await settle();
    f.finish.shift()?.();
  }
  assert.equal(failures, 1);
});
