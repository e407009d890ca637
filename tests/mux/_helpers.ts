/**
 * Test helpers: two muxes wired back to back in memory.
 *
 * @module
 */
import {
  decodeFrames,
  type Frame,
  Mux,
  type MuxEvent,
  type MuxOptions,
} from "../../lib/mux/mod.ts";

/** A SOCKS5 CONNECT request for 127.0.0.1:80. */
export const REQUEST = new Uint8Array([5, 1, 0, 1, 127, 0, 0, 1, 0, 80]);
/** A SOCKS5 success reply. */
export const REPLY_OK = new Uint8Array([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);

/** Pulls every record `from` has and feeds it to `to`; returns `to`'s events. */
export function pump(from: Mux, to: Mux, now = 0, maxBytes?: number): MuxEvent[] {
  const out: MuxEvent[] = [];
  for (let r = from.pull(maxBytes); r !== null; r = from.pull(maxBytes)) {
    for (const ev of to.receive(r, now)) out.push(ev);
  }
  return out;
}

/** Every frame in the records `m` has pending, drained (they go nowhere). */
export function drainFrames(m: Mux, maxBytes?: number): Frame[] {
  const out: Frame[] = [];
  for (let r = m.pull(maxBytes); r !== null; r = m.pull(maxBytes)) out.push(...decodeFrames(r));
  return out;
}

/** A client and a server; the server replies to every OPEN at once. */
export function pair(
  clientOpts: Partial<MuxOptions> = {},
  serverOpts: Partial<MuxOptions> = {},
): { client: Mux; server: Mux } {
  return {
    client: new Mux({ ...clientOpts, role: "client" }),
    server: new Mux({ ...serverOpts, role: "server" }),
  };
}

/** Opens a stream and completes OPEN/REPLY; returns the id. */
export function openStream(client: Mux, server: Mux): number {
  const id = client.open(REQUEST);
  for (const ev of pump(client, server)) {
    if (ev.type === "open" && ev.id === id) server.reply(id, REPLY_OK);
  }
  const evs = pump(server, client);
  if (!evs.some((e) => e.type === "reply" && e.id === id)) throw new Error("no reply");
  return id;
}

/** Bytes with a pattern that depends on `seed` and position. */
export function pattern(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0; i < len; i++) out[i] = (seed * 131 + i * 7 + (i >>> 8)) & 0xff;
  return out;
}

/** Joins byte arrays (`concat` from lib/wire). */
export { concat as concatAll } from "../../lib/wire/bytes.ts";

/** A record made of hand-built frames (no validation: for malformed-input tests). */
export function rawFrame(
  type: number,
  id: number,
  payload: Uint8Array | number[] = [],
  lenOverride?: number,
): Uint8Array {
  const p = payload instanceof Uint8Array ? payload : new Uint8Array(payload);
  const len = lenOverride ?? p.length;
  const out = new Uint8Array(8 + p.length);
  out[0] = type;
  new DataView(out.buffer).setUint32(1, id);
  out[5] = (len >>> 16) & 0xff;
  out[6] = (len >>> 8) & 0xff;
  out[7] = len & 0xff;
  out.set(p, 8);
  return out;
}
