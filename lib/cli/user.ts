/**
 * `nitrosocks user add|list|remove`: manages `users.yml` in a server
 * directory, keeping its comments and other users, and writes each new
 * user's client profile and share link.
 *
 * @module
 */
import { join } from "node:path";
import { randomBytes } from "../crypto/mod.ts";
import {
  addUserToYaml,
  encodeShareLink,
  formatClientProfile,
  loadServerConfig,
  loadUsers,
  parseClientConfig,
  parseRoute,
  parseUsers,
  removeUserFromYaml,
  USER_NAME_PATTERN,
  type UserEntry,
} from "../config/mod.ts";
import {
  decodeServerIdentity,
  generateClientKey,
  generateToken,
  serverPublicKey,
} from "../handshake/mod.ts";
import { certificateNames } from "../pki/mod.ts";
import {
  boolFlag,
  formatHostPort,
  parseFlags,
  parseHostPort,
  stringFlag,
  UsageError,
} from "./args.ts";
import type { Command } from "./mod.ts";

/** Options for {@link addUser}. */
export interface AddUserOptions {
  /** Server directory holding server.yml. */
  dir: string;
  /** Profile path; default `./NAME.yml`. */
  out?: string;
  /** HOST:PORT clients connect to; default the listen address (0.0.0.0 → 127.0.0.1). */
  server?: string;
  /** Route patterns; default ["*"]. */
  routes?: string[];
  /** Also require a TOTP code. */
  totp?: boolean;
  /** Overwrite an existing profile file. */
  force?: boolean;
}

/** What {@link addUser} produced. */
export interface AddUserResult {
  usersFile: string;
  profilePath: string;
  profileYaml: string;
  link: string;
}

function checkName(name: string | undefined): string {
  if (name === undefined) throw new UsageError("missing NAME");
  if (!USER_NAME_PATTERN.test(name)) {
    throw new UsageError(`Invalid user name "${name}": expected 1-64 of A-Z a-z 0-9 . _ -`);
  }
  return name;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/** Runs `fn` holding `FILE.lock`, so two user commands never race on one file. */
async function withLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const lock = `${file}.lock`;
  try {
    (await Deno.open(lock, { createNew: true, write: true, mode: 0o600 })).close();
  } catch (e) {
    if (e instanceof Deno.errors.AlreadyExists) {
      throw new Error(
        `Cannot lock "${file}": another user command is running (delete "${lock}" if not)`,
      );
    }
    throw e;
  }
  try {
    return await fn();
  } finally {
    await Deno.remove(lock).catch(() => {});
  }
}

/** Replaces `path` atomically (temp file + rename), mode 0600. */
async function replaceFile(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${
    Array.from(randomBytes(6), (b) => b.toString(16).padStart(2, "0")).join("")
  }`;
  await Deno.writeTextFile(tmp, text, { mode: 0o600, createNew: true });
  try {
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/**
 * Adds user `name` to the server in `opts.dir`: new key pair and token,
 * entry appended to users.yml (comments kept, written atomically), profile
 * written with mode 0600. Refuses an existing user or profile file.
 *
 * @example
 * ```ts ignore
 * import { addUser } from "./user.ts";
 * const { link } = await addUser("alice", { dir: "/etc/nitrosocks" });
 * ```
 */
export async function addUser(name: string, opts: AddUserOptions): Promise<AddUserResult> {
  checkName(name);
  const routes = opts.routes ?? ["*"];
  for (const r of routes) {
    try {
      parseRoute(r);
    } catch (e) {
      throw new UsageError(e instanceof Error ? e.message : String(e));
    }
  }
  const cfg = await loadServerConfig(join(opts.dir, "server.yml"));
  let server: { host: string; port: number };
  if (opts.server !== undefined) server = parseHostPort(opts.server, "server address");
  else {
    const host = cfg.listen.host === "0.0.0.0"
      ? "127.0.0.1"
      : cfg.listen.host === "::"
      ? "::1"
      : cfg.listen.host;
    server = { host, port: cfg.listen.port };
  }
  if (server.port === 0) {
    throw new UsageError("the server listens on port 0; pass --server HOST:PORT");
  }

  let serverName = server.host;
  let caPem: string | undefined;
  if (cfg.transport === "tls" && cfg.tls !== undefined) {
    const dnsNames = certificateNames(cfg.tls.certPem).dnsNames;
    if (server.host.includes(":") || /^[\d.]+$/.test(server.host)) {
      serverName = dnsNames[0] ?? server.host;
    }
    const caPath = join(cfg.dir, "tls", "ca.crt");
    if (await exists(caPath)) caPem = await Deno.readTextFile(caPath);
  }

  const profilePath = opts.out ?? `${name}.yml`;
  if (!opts.force && await exists(profilePath)) {
    throw new Error(
      `Refusing to overwrite "${profilePath}": it already exists (use --force or --out FILE)`,
    );
  }

  return await withLock(cfg.usersFile, async () => {
    const usersText = await Deno.readTextFile(cfg.usersFile);
    const client = generateClientKey();
    const token = generateToken();
    const totpSecret = opts.totp ? randomBytes(20) : undefined;
    const newUsers = addUserToYaml(usersText, cfg.usersFile, {
      name,
      publicKey: client.publicKey,
      token,
      ...(totpSecret === undefined ? {} : { totpSecret }),
      routes,
    });
    const profileYaml = formatClientProfile({
      server,
      serverName,
      transport: cfg.transport,
      serverKey: serverPublicKey(decodeServerIdentity(cfg.identity)),
      ...(caPem === undefined ? {} : { caPem }),
      user: name,
      key: client.privateKey,
      token,
      ...(totpSecret === undefined ? {} : { totpSecret }),
    });
    parseClientConfig(profileYaml, profilePath); // never hand out a profile that does not load

    await Deno.writeTextFile(profilePath, profileYaml, { mode: 0o600, createNew: !opts.force });
    if (opts.force) await Deno.chmod(profilePath, 0o600);
    try {
      await replaceFile(cfg.usersFile, newUsers);
    } catch (e) {
      await Deno.remove(profilePath).catch(() => {});
      throw e;
    }
    return {
      usersFile: cfg.usersFile,
      profilePath,
      profileYaml,
      link: encodeShareLink(profileYaml),
    };
  });
}

/** The users of the server in `dir`, in file order. */
export async function listUsers(dir: string): Promise<UserEntry[]> {
  const cfg = await loadServerConfig(join(dir, "server.yml"));
  return [...(await loadUsers(cfg.usersFile)).users.values()];
}

/** Removes user `name` from the server in `dir` (comments kept, atomic write). */
export async function removeUser(name: string, dir: string): Promise<string> {
  checkName(name);
  const cfg = await loadServerConfig(join(dir, "server.yml"));
  await withLock(cfg.usersFile, async () => {
    const text = await Deno.readTextFile(cfg.usersFile);
    const out = removeUserFromYaml(text, cfg.usersFile, name);
    parseUsers(out, cfg.usersFile);
    await replaceFile(cfg.usersFile, out);
  });
  return cfg.usersFile;
}

function status(u: UserEntry, now: Date): string {
  if (u.disabled) return "disabled";
  if (u.expires !== undefined && u.expires.getTime() <= now.getTime()) return "expired";
  return "active";
}

/** Formats users as an aligned table. */
export function formatUserTable(users: UserEntry[], now = new Date()): string {
  const rows = [
    ["NAME", "ROUTES", "EXPIRES", "STATUS"],
    ...users.map((u) => [
      u.name,
      u.routes.length === 0 ? "(none)" : u.routes.join(","),
      u.expires?.toISOString() ?? "never",
      status(u, now),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}

const USAGE = `Usage:
  nitrosocks user add NAME --dir DIR [--out FILE] [--server HOST:PORT] [--routes GLOB,...] [--totp] [--force]
  nitrosocks user list --dir DIR
  nitrosocks user remove NAME --dir DIR

add      makes a key pair and token for NAME, adds NAME to DIR's users.yml and
         writes the client profile (mode 0600) and a nitrosocks:// share link
list     shows names, routes, expiry and status
remove   deletes NAME from users.yml

Options:
  --dir DIR           server directory holding server.yml (default .)
  --out FILE          where to write the profile (default ./NAME.yml)
  --server HOST:PORT  address clients dial (default the listen address;
                      0.0.0.0 becomes 127.0.0.1)
  --routes GLOB,...   allowed destinations, e.g. "tcp:*.example.com:443,10.0.0.*:22"
                      (default *); see docs/CONFIG.md for the pattern grammar
  --totp              also require a TOTP code (secret stored in both files)
  --force             overwrite an existing profile file`;

/** The `user` subcommand. */
export const userCommand: Command = {
  name: "user",
  summary: "Add, list or remove users; print a client profile link",
  usage: USAGE,
  async run(args) {
    const [sub, ...rest] = args;
    const p = parseFlags(rest, {
      dir: { type: "string" },
      out: { type: "string" },
      server: { type: "string" },
      routes: { type: "string" },
      totp: { type: "boolean" },
      force: { type: "boolean" },
    });
    const dir = stringFlag(p, "dir") ?? ".";
    const onlyFor = (allowed: string[]) => {
      for (const f of ["out", "server", "routes", "totp", "force"]) {
        if (!allowed.includes(f) && p.values[f] !== undefined) {
          throw new UsageError(`--${f} is not an option of "user ${sub}"`);
        }
      }
    };
    const oneName = () => {
      if (p.positionals.length > 1) {
        throw new UsageError(`unexpected argument "${p.positionals[1]}"`);
      }
      return checkName(p.positionals[0]);
    };
    switch (sub) {
      case "add": {
        const name = oneName();
        const out = stringFlag(p, "out");
        const server = stringFlag(p, "server");
        const routes = stringFlag(p, "routes")?.split(",").map((s) => s.trim()).filter((s) =>
          s !== ""
        );
        const r = await addUser(name, {
          dir,
          ...(out === undefined ? {} : { out }),
          ...(server === undefined ? {} : { server }),
          ...(routes === undefined ? {} : { routes }),
          totp: boolFlag(p, "totp"),
          force: boolFlag(p, "force"),
        });
        const prof = parseClientConfig(r.profileYaml, r.profilePath);
        console.log(
          [
            `Added user "${name}" to ${r.usersFile} (routes: ${(routes ?? ["*"]).join(",")}).`,
            `Wrote client profile ${r.profilePath} (mode 0600).`,
            "",
            `Share link (secret: it holds ${name}'s private key and token):`,
            r.link,
            "",
            "On the client machine:",
            `  nitrosocks client --config ${r.profilePath}     # or pass the share link instead`,
            `  curl --socks5-hostname ${
              formatHostPort(prof.socks5.listen.host, prof.socks5.listen.port)
            } https://example.com`,
            "",
            "A running server picks the user up when it reloads users.yml.",
          ].join("\n"),
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
        const file = await removeUser(name, dir);
        console.log(
          `Removed user "${name}" from ${file}. Their profile no longer connects once the server reloads users.yml.`,
        );
        return 0;
      }
      case undefined:
        throw new UsageError("missing subcommand: add, list or remove");
      default:
        throw new UsageError(`unknown subcommand "${sub}": expected add, list or remove`);
    }
  },
};
