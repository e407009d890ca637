/**
 * `nitrosocks user add|list|remove`: the command line of `addUser`,
 * `listUsers` and `removeUser` in `lib/provision`: flags in, the profile
 * link or the user table out.
 *
 * @module
 */
import {
  parseClientConfig,
  parseDuration,
  parseQuota,
  parseSize,
  type UserChanges,
  type UserEntry,
} from "../config/mod.ts";
import {
  addUser,
  issueUserToken,
  listUsers,
  removeUser,
  setUser,
  writeNewFile,
} from "../provision/mod.ts";
import { fromBase64Url, toBase64Url } from "../crypto/mod.ts";
import { formatHostPort } from "../wire/host_port.ts";
import { asUsageError, boolFlag, parseFlags, stringFlag, UsageError } from "./args.ts";
import type { Command } from "./mod.ts";
import { terminalQr } from "./qr.ts";
import { readPassword } from "./secret.ts";

function status(u: UserEntry, now: Date): string {
  if (u.disabled) return "disabled";
  if (u.expires !== undefined && u.expires.getTime() <= now.getTime()) return "expired";
  return "active";
}

/** The user's second factor besides the static key, as `user list` shows it. */
function factorOf(u: UserEntry): string {
  const f = u.password !== undefined
    ? `password (${u.password.iterations} iterations)`
    : u.jwt !== undefined
    ? "jwt"
    : "token";
  return u.totpSecret === undefined ? f : `${f} + totp`;
}

/** "10MB", "1.5GB", "512kB": a byte count in SI units, as users.yml accepts it. */
function bytesText(n: number): string {
  const units: [number, string][] = [[1e12, "TB"], [1e9, "GB"], [1e6, "MB"], [1e3, "kB"]];
  const [div, unit] = units.find(([d]) => n >= d) ?? [1, "B"];
  return `${+(n / div).toFixed(2)}${unit}`;
}

/** The user's limits in users.yml's words, or "-". */
function limitsText(u: UserEntry): string {
  const parts: string[] = [];
  if (u.bandwidth !== undefined) parts.push(`bandwidth ${bytesText(u.bandwidth)}/s`);
  if (u.quota !== undefined) {
    const d = u.quota.periodS / 86_400;
    const period = Number.isInteger(d) ? `${d}d` : `${u.quota.periodS}s`;
    parts.push(`quota ${bytesText(u.quota.bytes)}/${period}`);
  }
  if (u.maxTunnels !== undefined) parts.push(`max_tunnels ${u.maxTunnels}`);
  if (u.maxStreams !== undefined) parts.push(`max_streams ${u.maxStreams}`);
  return parts.length === 0 ? "-" : parts.join(", ");
}

/** Formats users as an aligned table. */
export function formatUserTable(users: UserEntry[], now = new Date()): string {
  const rows = [
    ["NAME", "LOGIN", "ROUTES", "EXPIRES", "STATUS", "LIMITS"],
    ...users.map((u) => [
      u.name,
      factorOf(u),
      u.routes.length === 0 ? "(none)" : u.routes.join(","),
      u.expires?.toISOString() ?? "never",
      status(u, now),
      limitsText(u),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}

const USAGE = `Usage:
  nitrosocks user add NAME --dir DIR [--out FILE] [--server HOST:PORT | --url URL] [--routes GLOB,...]
                     [--totp] [--password [--iterations N] | --jwt | --jwt-secret | --jwt-key KEY]
                     [--client-cert] [--force] [--qr]
                     [--bandwidth RATE] [--quota SIZE/PERIOD] [--max-tunnels N] [--max-streams N] [--expires WHEN]
  nitrosocks user set NAME --dir DIR [--routes GLOB,...] [--bandwidth RATE] [--quota SIZE/PERIOD]
                     [--max-tunnels N] [--max-streams N] [--expires WHEN] [--disable | --enable]
                     [--password]
  nitrosocks user token NAME --dir DIR [--ttl DURATION] [--routes GLOB,...] [--out FILE]
  nitrosocks user list --dir DIR
  nitrosocks user remove NAME --dir DIR

add      makes a key pair and token for NAME, adds NAME to DIR's users.yml and
         writes the client profile (mode 0600) and a nitrosocks:// share link
set      changes NAME's routes and limits, disables/enables NAME, or gives a
         password user a new password (--password)
list     shows names, routes, expiry, status and limits
remove   deletes NAME from users.yml
token    signs a JWT for a JWT user with their HS256 secret (or auth.jwt's first
         secret) and prints it, or writes it to --out (mode 0600)

users.yml keeps its comments and other users. A running server applies the
change within 2 s: a user removed, disabled, expired or over quota loses
their live tunnels at once. When DIR's server.yml says store.users: true, the
users live in the fleet's Redis instead: the commands read and write there
(the first change copies DIR's users.yml there), and every server of the
fleet applies a change within 2 s.

Options:
  --dir DIR           server directory holding server.yml (default .)
  --out FILE          where to write the profile (default ./NAME.yml)
  --server HOST:PORT  address clients dial (default the listen address; for
                      0.0.0.0 or ::, init's --name at the listen port, or
                      loopback when the certificate names only localhost)
  --url URL           the way in as a URL instead: tls://HOST:PORT, tcp://HOST:PORT,
                      wss://HOST:PORT/PATH (e.g. a CDN or nginx in front), ws://…
  --routes GLOB,...   allowed destinations, first match wins, e.g.
                      'tcp:*.example.com:443,!10.1.2.3,10.0.0.0/8:22' (default *:
                      anything outside server.yml's egress.block; loopback and
                      private addresses only when named, e.g. '127.0.0.1:*');
                      see docs/CONFIG.md for the pattern grammar
  --totp              also require a TOTP code (secret stored in both files)
  --password          log in with a password instead of a token (SCRAM-SHA-256): asks for
                      it twice with echo off, or reads the first line of standard input
                      when it is not a terminal; never on the command line. users.yml
                      keeps only the salt, iteration count, StoredKey and ServerKey.
                      With set: a new password for a password user, read the same way
                      and derived with the salt and iteration count users.yml holds,
                      so the user's profile keeps working (give them the new password)
  --iterations N      PBKDF2 iterations for --password (default 600000, at least 4096)
  --jwt               log in with a JWT instead of a token, verified with server.yml's
                      auth.jwt keys (refused while it has none); the profile reads the
                      token from NAME.jwt next to it
  --jwt-secret        --jwt with a fresh per-user HS256 secret (printed once, kept in
                      users.yml); a first token valid for a day is written to NAME.jwt
  --jwt-key KEY       --jwt accepting EdDSA tokens signed by this Ed25519 public key
                      (32 bytes, base64url)
  --ttl DURATION      token: lifetime, e.g. 1h, 30m (default 1h)
  --client-cert       also issue a TLS client certificate (CN = NAME) from DIR/tls/ca.crt
                      into the profile, for a server with tls.client_ca: tls/ca.crt
  --force             overwrite an existing profile file
  --qr                also print the share link as a QR code (for a phone's camera)

Limits (add and set; with set, "none" removes a limit):
  --bandwidth RATE    each direction, shared by all the user's tunnels, e.g. 10MB/s
  --quota SIZE/PERIOD bytes both ways per period, e.g. 50GB/30d (periods: m, h, d)
  --max-tunnels N     most tunnels (clients) at once
  --max-streams N     most connections at once over all the user's tunnels
  --expires WHEN      refused from then on: 2027-01-01, 2027-01-01T12:00:00Z, or a
                      duration from now such as 30d ("never" with set)
  --disable, --enable (set) refuse the user / let them in again`;

const LIMIT_FLAGS = ["bandwidth", "quota", "max-tunnels", "max-streams", "expires"];

/** `--bandwidth`: a rate as users.yml takes it ("10MB/s"), or null for "none". */
function rateFlag(text: string): string | null {
  if (text === "none") return null;
  const body = text.endsWith("/s") ? text.slice(0, -2) : text;
  const n = parseSize(body, { loose: true });
  if (n === undefined || n < 1024) {
    throw new UsageError(
      `Invalid --bandwidth "${text}": expected a rate of at least 1KiB/s such as 10MB/s`,
    );
  }
  return parseSize(body) === undefined ? `${n}B/s` : `${body}/s`;
}

/** `--quota`: "50GB/30d" as users.yml takes it, or null for "none". */
function quotaFlag(text: string): string | null {
  if (text === "none") return null;
  const q = parseQuota(text, { loose: true });
  if (q === undefined || q.bytes < 1024 || q.periodS < 60) {
    throw new UsageError(
      `Invalid --quota "${text}": expected SIZE/PERIOD such as 50GB/30d (at least 1KiB per 1m)`,
    );
  }
  return parseQuota(text) === undefined
    ? `${q.bytes}B/${text.slice(text.lastIndexOf("/") + 1)}`
    : text;
}

/** `--max-tunnels` / `--max-streams`: a positive integer, or null for "none". */
function countFlag(name: string, text: string): number | null {
  if (text === "none") return null;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > 1_000_000) {
    throw new UsageError(`Invalid --${name} "${text}": expected a whole number 1..1000000`);
  }
  return n;
}

/** `--expires`: a date, an RFC 3339 time or a duration from now; null for "never". */
function expiresFlag(text: string, now = Date.now()): Date | null {
  if (text === "never") return null;
  const d = parseDuration(text);
  if (d !== undefined) return new Date(now + d * 1000);
  const t = /^\d{4}-\d\d-\d\d(T\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:\d\d))?$/.test(text)
    ? Date.parse(text.length === 10 ? `${text}T00:00:00Z` : text)
    : NaN;
  if (Number.isNaN(t)) {
    throw new UsageError(
      `Invalid --expires "${text}": expected 2027-01-01, 2027-01-01T12:00:00Z or a duration such as 30d`,
    );
  }
  return new Date(t);
}

/** The limit flags given, as changes to the user. */
function limitChanges(p: ReturnType<typeof parseFlags>): UserChanges {
  const c: UserChanges = {};
  const bw = stringFlag(p, "bandwidth");
  if (bw !== undefined) c.bandwidth = rateFlag(bw);
  const q = stringFlag(p, "quota");
  if (q !== undefined) c.quota = quotaFlag(q);
  const mt = stringFlag(p, "max-tunnels");
  if (mt !== undefined) c.maxTunnels = countFlag("max-tunnels", mt);
  const ms = stringFlag(p, "max-streams");
  if (ms !== undefined) c.maxStreams = countFlag("max-streams", ms);
  const ex = stringFlag(p, "expires");
  if (ex !== undefined) c.expires = expiresFlag(ex);
  return c;
}

/** The `user` subcommand. */
export const userCommand: Command = {
  name: "user",
  summary: "Add, change, list or remove users; print a client profile link",
  usage: USAGE,
  async run(args) {
    const [sub, ...rest] = args;
    const p = parseFlags(rest, {
      dir: { type: "string" },
      out: { type: "string" },
      server: { type: "string" },
      url: { type: "string" },
      routes: { type: "string" },
      totp: { type: "boolean" },
      password: { type: "boolean" },
      iterations: { type: "string" },
      "client-cert": { type: "boolean" },
      jwt: { type: "boolean" },
      "jwt-secret": { type: "boolean" },
      "jwt-key": { type: "string" },
      ttl: { type: "string" },
      force: { type: "boolean" },
      qr: { type: "boolean" },
      bandwidth: { type: "string" },
      quota: { type: "string" },
      "max-tunnels": { type: "string" },
      "max-streams": { type: "string" },
      expires: { type: "string" },
      disable: { type: "boolean" },
      enable: { type: "boolean" },
    });
    const dir = stringFlag(p, "dir") ?? ".";
    const onlyFor = (allowed: string[]) => {
      const all = [
        "out",
        "server",
        "url",
        "routes",
        "totp",
        "password",
        "iterations",
        "client-cert",
        "jwt",
        "jwt-secret",
        "jwt-key",
        "ttl",
        "force",
        "qr",
        ...LIMIT_FLAGS,
        "disable",
        "enable",
      ];
      for (const f of all) {
        if (!allowed.includes(f) && p.values[f] !== undefined) {
          throw new UsageError(`--${f} is not an option of "user ${sub}"`);
        }
      }
    };
    const oneName = () => {
      if (p.positionals.length > 1) {
        throw new UsageError(`unexpected argument "${p.positionals[1]}"`);
      }
      const name = p.positionals[0];
      if (name === undefined) throw new UsageError("missing NAME");
      return name;
    };
    switch (sub) {
      case "add": {
        onlyFor([
          "out",
          "server",
          "url",
          "routes",
          "totp",
          "password",
          "iterations",
          "client-cert",
          "jwt",
          "jwt-secret",
          "jwt-key",
          "force",
          "qr",
          ...LIMIT_FLAGS,
        ]);
        const name = oneName();
        const limits = limitChanges(p);
        for (const [k, v] of Object.entries(limits)) {
          if (v === null) throw new UsageError(`"none" and "never" are for "user set" (${k})`);
        }
        const out = stringFlag(p, "out");
        const server = stringFlag(p, "server");
        const url = stringFlag(p, "url");
        const routes = stringFlag(p, "routes")?.split(",").map((s) => s.trim()).filter((s) =>
          s !== ""
        );
        const iterText = stringFlag(p, "iterations");
        if (iterText !== undefined && !boolFlag(p, "password")) {
          throw new UsageError("--iterations goes with --password");
        }
        const iterations = iterText === undefined ? undefined : Number(iterText);
        if (iterations !== undefined && !Number.isSafeInteger(iterations)) {
          throw new UsageError(`Invalid --iterations "${iterText}": expected a whole number`);
        }
        if (p.values.ttl !== undefined) throw new UsageError('--ttl is an option of "user token"');
        const jwtKeyText = stringFlag(p, "jwt-key");
        const wantsJwt = boolFlag(p, "jwt") || boolFlag(p, "jwt-secret") ||
          jwtKeyText !== undefined;
        if (wantsJwt && boolFlag(p, "password")) {
          throw new UsageError("--password and --jwt are two second factors: choose one");
        }
        let jwtKey: Uint8Array | undefined;
        if (jwtKeyText !== undefined) {
          try {
            jwtKey = fromBase64Url(jwtKeyText);
          } catch {
            jwtKey = undefined;
          }
          if (jwtKey?.length !== 32) {
            throw new UsageError(
              "Invalid --jwt-key: expected an Ed25519 public key, 32 bytes base64url",
            );
          }
        }
        const password = boolFlag(p, "password")
          ? await readPassword(`Password for "${name}"`, { confirm: true })
          : undefined;
        const r = await asUsageError(addUser(name, {
          ...(wantsJwt
            ? {
              jwt: {
                ...(boolFlag(p, "jwt-secret") ? { secret: true } : {}),
                ...(jwtKey === undefined ? {} : { publicKey: jwtKey }),
              },
            }
            : {}),
          ...(password === undefined ? {} : { password }),
          ...(iterations === undefined ? {} : { iterations }),
          dir,
          ...(out === undefined ? {} : { out }),
          ...(server === undefined ? {} : { server }),
          ...(url === undefined ? {} : { url }),
          ...(routes === undefined ? {} : { routes }),
          totp: boolFlag(p, "totp"),
          clientCert: boolFlag(p, "client-cert"),
          force: boolFlag(p, "force"),
          ...(limits.bandwidth == null ? {} : { bandwidth: limits.bandwidth }),
          ...(limits.quota == null ? {} : { quota: limits.quota }),
          ...(limits.maxTunnels == null ? {} : { maxTunnels: limits.maxTunnels }),
          ...(limits.maxStreams == null ? {} : { maxStreams: limits.maxStreams }),
          ...(limits.expires == null ? {} : { expires: limits.expires }),
        }));
        const prof = parseClientConfig(r.profileYaml, r.profilePath);
        console.log(
          [
            `Added user "${name}" to ${r.usersFile} (routes: ${(routes ?? ["*"]).join(",")}).`,
            `Wrote client profile ${r.profilePath} (mode 0600).`,
            `Clients dial ${
              formatHostPort(r.dial.server.host, r.dial.server.port)
            } (${r.dial.reason}).`,
            "",
            `Share link (secret: it holds ${name}'s private key${
              password !== undefined
                ? "; the password is not in it"
                : wantsJwt
                ? "; the JWT is read from the jwt_file next to the profile"
                : " and token"
            }):`,
            r.link,
            "",
            ...(r.linkCa === "whole" && prof.transport === "tls"
              ? [
                `(The link carries the CA whole, ${r.link.length} characters: the server does not send ` +
                `its CA after its certificate. "nitrosocks cert renew --dir ${dir}" writes that chain; ` +
                "links made after it name the CA by its hash and stay under 400 characters.)",
                "",
              ]
              : []),
            ...(boolFlag(p, "qr") ? [terminalQr(r.link), ""] : []),
            ...(r.jwtFile === undefined ? [] : [
              r.jwtSecret === undefined
                ? `The profile reads its JWT from ${r.jwtFile}: write a token signed with auth.jwt's keys there (sub: "${name}").`
                : `Wrote a first JWT (valid 24 h) to ${r.jwtFile}; renew it with: nitrosocks user token ${name} --dir ${dir} --out ${r.jwtFile}`,
              ...(r.jwtSecret === undefined ? [] : [
                `${name}'s HS256 secret (for your token issuer; also in users.yml): ${
                  toBase64Url(r.jwtSecret)
                }`,
              ]),
              "",
            ]),
            "On the client machine:",
            `  nitrosocks client --config ${r.profilePath}     # or pass the share link instead`,
            `  curl --socks5-hostname ${
              formatHostPort(prof.socks5.listen.host, prof.socks5.listen.port)
            } https://example.com`,
            "",
            `A running server picks the user up within 2 s (${
              r.inStore ? "every server of the fleet" : "it watches users.yml"
            }).`,
          ].join("\n"),
        );
        return 0;
      }
      case "set": {
        onlyFor(["routes", ...LIMIT_FLAGS, "disable", "enable", "password"]);
        const name = oneName();
        const changes: UserChanges & { password?: string } = limitChanges(p);
        const routes = stringFlag(p, "routes");
        if (routes !== undefined) {
          changes.routes = routes.split(",").map((r) => r.trim()).filter((r) => r !== "");
        }
        if (boolFlag(p, "disable") && boolFlag(p, "enable")) {
          throw new UsageError("--disable and --enable together: choose one");
        }
        if (boolFlag(p, "disable")) changes.disabled = true;
        if (boolFlag(p, "enable")) changes.disabled = false;
        if (Object.keys(changes).length === 0 && !boolFlag(p, "password")) {
          throw new UsageError(
            "nothing to change: give --routes, --bandwidth, --quota, --max-tunnels, --max-streams, --expires, --disable, --enable or --password",
          );
        }
        const what = Object.entries(changes).map(([k, v]) =>
          `${k} ${v === null ? "removed" : v instanceof Date ? v.toISOString() : String(v)}`
        );
        if (boolFlag(p, "password")) {
          changes.password = await readPassword(`New password for "${name}"`, { confirm: true });
          what.push("password (same salt and iterations: the profile stays valid)");
        }
        const file = await asUsageError(setUser(name, dir, changes));
        console.log(
          `Changed user "${name}" in ${file}: ${
            what.join(", ")
          }. A running server applies it within 2 s.`,
        );
        return 0;
      }
      case "list":
      case "ls": {
        onlyFor([]);
        if (p.positionals.length > 0) {
          throw new UsageError(`unexpected argument "${p.positionals[0]}"`);
        }
        const users = await listUsers(dir);
        console.log(
          users.length === 0
            ? `No users yet. Add one: nitrosocks user add NAME --dir ${dir}`
            : formatUserTable(users),
        );
        return 0;
      }
      case "remove":
      case "rm": {
        onlyFor([]);
        const name = oneName();
        const file = await asUsageError(removeUser(name, dir));
        console.log(
          `Removed user "${name}" from ${file}. Their profile no longer connects once the server reloads its users (within 2 s).`,
        );
        return 0;
      }
      case "token": {
        onlyFor(["routes", "ttl", "out"]);
        const name = oneName();
        const ttlText = stringFlag(p, "ttl") ?? "1h";
        const ttlS = parseDuration(ttlText);
        if (ttlS === undefined || ttlS < 1) {
          throw new UsageError(`Invalid --ttl "${ttlText}": expected a duration such as 1h or 30m`);
        }
        const routes = stringFlag(p, "routes")?.split(",").map((s) => s.trim()).filter((s) =>
          s !== ""
        );
        const token = await asUsageError(
          issueUserToken(name, { dir, ttlS, ...(routes === undefined ? {} : { routes }) }),
        );
        const out = stringFlag(p, "out");
        if (out === undefined) console.log(token);
        else {
          await writeNewFile(out, `${token}\n`, { overwrite: true });
          console.log(`Wrote a JWT for "${name}" valid ${ttlText} to ${out} (mode 0600).`);
        }
        return 0;
      }
      case undefined:
        throw new UsageError("missing subcommand: add, set, list, remove or token");
      default:
        throw new UsageError(
          `unknown subcommand "${sub}": expected add, set, list, remove or token`,
        );
    }
  },
};
