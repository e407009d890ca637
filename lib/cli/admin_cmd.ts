/**
 * `nitrosocks status --dir DIR` and `nitrosocks kick NAME --dir DIR`: ask a
 * running server's admin listener (`admin.listen` in DIR/server.yml) for its
 * live sessions, or to end a user's sessions.
 *
 * @module
 */
import { join } from "node:path";
import { loadServerConfig, USER_NAME_PATTERN } from "../config/mod.ts";
import {
  type AdminTarget,
  fetchStatus,
  kickUser,
  type LiveSession,
  type StatusReport,
} from "../admin/mod.ts";
import { boolFlag, parseFlags, stringFlag, UsageError } from "./args.ts";
import type { Command } from "./mod.ts";

const statusUsage = `Usage: nitrosocks status [--dir DIR] [--json]

Shows a running server's live sessions: user, source address, since when,
tunnel bytes each way, streams, round-trip time and the connection's path.
Asks the server's admin listener, set in DIR/server.yml:

  admin:
    listen: 127.0.0.1:9090

Options:
  --dir DIR   server directory holding server.yml (default .)
  --json      print the report as JSON
  -h, --help  show this help`;

const kickUsage = `Usage: nitrosocks kick NAME [--dir DIR]

Ends every live session of user NAME at once: the client is told the session
was revoked and its open connections close. NAME stays a user: to keep them
out, also disable them in users.yml (or remove them). Asks the server's admin
listener, set in DIR/server.yml (admin.listen).

Options:
  --dir DIR   server directory holding server.yml (default .)
  -h, --help  show this help`;

/** Reads DIR/server.yml's `admin:`; throws with what to add when `admin.listen` is not set. */
export async function adminTarget(dir: string): Promise<AdminTarget> {
  const file = join(dir, "server.yml");
  const config = await loadServerConfig(file);
  const listen = config.admin.listen;
  if (listen === undefined) {
    throw new Error(
      `admin.listen is not set in ${file}: add \`admin: { listen: 127.0.0.1:9090 }\` ` +
        "and restart the server",
    );
  }
  return config.admin.token === undefined ? { listen } : { listen, token: config.admin.token };
}

/** 1536 → "1.5 KiB". */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

/** 3725 s → "1h2m". */
function formatAge(seconds: number): string {
  const s = Math.max(0, Math.floor(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d${Math.floor((s % 86400) / 3600)}h`;
}

/**
 * The status report as a table, one live session a row.
 *
 * @example
 * ```ts
 * import { formatStatus } from "./admin_cmd.ts";
 * const text = formatStatus({ server: { startedAt: "2026-01-01T00:00:00.000Z", uptimeS: 5, users: 1 }, sessions: [] }, 0);
 * console.log(text); // No live sessions (server up 5s, 1 user).
 * ```
 */
export function formatStatus(report: StatusReport, now: number): string {
  const { server, sessions } = report;
  const users = server.users === 1 ? "1 user" : `${server.users} users`;
  if (sessions.length === 0) {
    return `No live sessions (server up ${formatAge(server.uptimeS)}, ${users}).`;
  }
  const head = ["SESSION", "USER", "SOURCE", "SINCE", "IN", "OUT", "STREAMS", "RTT", "PATH"];
  const row = (s: LiveSession) => {
    const since = Date.parse(s.since);
    return [
      String(s.session),
      s.user,
      s.source,
      `${s.since.replace("T", " ").replace(/\.\d+Z$/, "Z")} (${formatAge((now - since) / 1000)})`,
      formatBytes(s.bytesIn),
      formatBytes(s.bytesOut),
      `${s.streams} (${s.streamsTotal} total)`,
      s.rttMs === null ? "-" : `${s.rttMs.toFixed(1)} ms`,
      s.connected ? `via ${s.via}` : `waiting to resume (last via ${s.via})`,
    ];
  };
  const rows = [head, ...sessions.map(row)];
  const widths = head.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  const lines = rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd());
  const n = sessions.length === 1 ? "1 live session" : `${sessions.length} live sessions`;
  return [...lines, "", `${n} (server up ${formatAge(server.uptimeS)}, ${users}).`].join("\n");
}

/** `nitrosocks status`: the live sessions of the server in DIR. */
export const statusCommand: Command = {
  name: "status",
  summary: "show a running server's live sessions (through admin.listen)",
  usage: statusUsage,
  async run(args) {
    const p = parseFlags(args, { dir: { type: "string" }, json: { type: "boolean" } });
    if (p.positionals.length > 0) throw new UsageError(`Unexpected argument "${p.positionals[0]}"`);
    const target = await adminTarget(stringFlag(p, "dir") ?? ".");
    const report = await fetchStatus(target);
    console.log(
      boolFlag(p, "json") ? JSON.stringify(report, null, 2) : formatStatus(report, Date.now()),
    );
    return 0;
  },
};

/** `nitrosocks kick NAME`: ends NAME's live sessions on the server in DIR. */
export const kickCommand: Command = {
  name: "kick",
  summary: "end a user's live sessions at once (through admin.listen)",
  usage: kickUsage,
  async run(args) {
    const p = parseFlags(args, { dir: { type: "string" } });
    const [name, ...rest] = p.positionals;
    if (name === undefined) throw new UsageError("Missing NAME: the user whose sessions to end");
    if (rest.length > 0) throw new UsageError(`Unexpected argument "${rest[0]}"`);
    if (!USER_NAME_PATTERN.test(name)) {
      throw new UsageError(`Invalid user name "${name}": expected 1-64 of A-Z a-z 0-9 . _ -`);
    }
    const target = await adminTarget(stringFlag(p, "dir") ?? ".");
    const r = await kickUser(target, name);
    console.log(
      r.sessions === 0
        ? `User "${name}" has no live session: nothing to end.`
        : `Ended ${r.sessions === 1 ? "1 session" : `${r.sessions} sessions`} of user "${name}".`,
    );
    return 0;
  },
};
