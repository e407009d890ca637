/**
 * The state file's JSON form: encode a snapshot, decode and check one.
 * Pure; `file_store.ts` does the I/O.
 *
 * ```json
 * { "format": "nitrosocks-state", "version": 1, "saved": "2026-01-01T00:00:00.000Z",
 *   "server": { "bytesIn": 0, …, "refusals": { "probe": 3 }, "limits": {} },
 *   "users": { "alice": { "bytesIn": 0, …, "period": { "start": 0, "bytesIn": 0, "bytesOut": 0 } } } }
 * ```
 *
 * @module
 */
import {
  type AccountingSnapshot,
  emptyServer,
  emptyUser,
  SERVER_COUNTER_NAMES,
  USER_COUNTER_NAMES,
  type UserCounters,
} from "./counters.ts";

/** The `format` field of every state file. */
export const STATE_FORMAT = "nitrosocks-state";
/** The version this code writes and reads. */
export const STATE_VERSION = 1;

/** Encodes `snapshot` as the state file's text (gauges included, as they were). */
export function encodeState(snapshot: AccountingSnapshot, savedAt: number): string {
  const users: Record<string, unknown> = {};
  for (const [name, u] of snapshot.users) {
    Object.defineProperty(users, name, { value: u, enumerable: true, writable: true });
  }
  const s = snapshot.server;
  const server = {
    ...s,
    refusals: Object.fromEntries(s.refusals),
    limits: Object.fromEntries(s.limits),
  };
  const doc = {
    format: STATE_FORMAT,
    version: STATE_VERSION,
    saved: new Date(savedAt).toISOString(),
    server,
    users,
  };
  return JSON.stringify(doc, null, 1) + "\n";
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function count(v: unknown, where: string): number {
  if (v === undefined) return 0;
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
    throw new SyntaxError(`Invalid ${where}: expected a number of 0 or more`);
  }
  return v;
}

function countMap(v: unknown, where: string): Map<string, number> {
  const out = new Map<string, number>();
  if (v === undefined) return out;
  if (!isRecord(v)) throw new SyntaxError(`Invalid ${where}: expected an object`);
  for (const [k, n] of Object.entries(v)) out.set(k, count(n, `${where}.${k}`));
  return out;
}

function decodeUser(v: unknown, where: string): UserCounters {
  if (!isRecord(v)) throw new SyntaxError(`Invalid ${where}: expected an object`);
  const u = emptyUser();
  for (const name of USER_COUNTER_NAMES) u[name] = count(v[name], `${where}.${name}`);
  // No session outlives the process that wrote the file.
  u.sessionsLive = 0;
  const p = v.period;
  if (p !== undefined) {
    if (!isRecord(p)) throw new SyntaxError(`Invalid ${where}.period: expected an object`);
    u.period = {
      start: count(p.start, `${where}.period.start`),
      bytesIn: count(p.bytesIn, `${where}.period.bytesIn`),
      bytesOut: count(p.bytesOut, `${where}.period.bytesOut`),
    };
  }
  return u;
}

/**
 * Decodes a state file's text; throws `SyntaxError` naming what is wrong.
 * Live-session gauges come back as 0.
 *
 * @example
 * ```ts
 * import { decodeState } from "./_state.ts";
 * const s = decodeState('{"format":"nitrosocks-state","version":1,"server":{},"users":{"bob":{"kicks":2}}}');
 * console.log(s.users.get("bob")?.kicks); // 2
 * ```
 */
export function decodeState(text: string): AccountingSnapshot {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new SyntaxError(`Not JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!isRecord(doc) || doc.format !== STATE_FORMAT) {
    throw new SyntaxError(`Not a NitroSocks state file: "format" is not "${STATE_FORMAT}"`);
  }
  if (doc.version !== STATE_VERSION) {
    throw new SyntaxError(
      `Unsupported state file version ${
        JSON.stringify(doc.version)
      }: this build reads ${STATE_VERSION}`,
    );
  }
  const server = emptyServer();
  const rs = doc.server;
  if (!isRecord(rs)) throw new SyntaxError(`Invalid server: expected an object`);
  for (const name of SERVER_COUNTER_NAMES) server[name] = count(rs[name], `server.${name}`);
  server.refusals = countMap(rs.refusals, "server.refusals");
  server.limits = countMap(rs.limits, "server.limits");
  const users = new Map<string, UserCounters>();
  if (!isRecord(doc.users)) throw new SyntaxError(`Invalid users: expected an object`);
  for (const [name, u] of Object.entries(doc.users)) {
    users.set(name, decodeUser(u, `users[${JSON.stringify(name)}]`));
  }
  return { server, users };
}
