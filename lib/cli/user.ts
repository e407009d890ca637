/**
 * `nitrosocks user add|list|remove`: the command line of `addUser`,
 * `listUsers` and `removeUser` in `lib/provision`: flags in, the profile
 * link or the user table out.
 *
 * @module
 */
import { parseClientConfig, type UserEntry } from "../config/mod.ts";
import { addUser, listUsers, removeUser } from "../provision/mod.ts";
import { formatHostPort } from "../wire/host_port.ts";
import { asUsageError, boolFlag, parseFlags, stringFlag, UsageError } from "./args.ts";
import type { Command } from "./mod.ts";
import { readPassword } from "./secret.ts";

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
  nitrosocks user add NAME --dir DIR [--out FILE] [--server HOST:PORT] [--routes GLOB,...] [--totp]
                     [--password [--iterations N]] [--client-cert] [--force]
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
  --password          log in with a password instead of a token (SCRAM-SHA-256): asks for
                      it twice with echo off, or reads the first line of standard input
                      when it is not a terminal; never on the command line. users.yml
                      keeps only the salt, iteration count, StoredKey and ServerKey
  --iterations N      PBKDF2 iterations for --password (default 600000, at least 4096)
  --client-cert       also issue a TLS client certificate (CN = NAME) from DIR/tls/ca.crt
                      into the profile, for a server with tls.client_ca: tls/ca.crt
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
      password: { type: "boolean" },
      iterations: { type: "string" },
      "client-cert": { type: "boolean" },
      force: { type: "boolean" },
    });
    const dir = stringFlag(p, "dir") ?? ".";
    const onlyFor = (allowed: string[]) => {
      for (
        const f of [
          "out",
          "server",
          "routes",
          "totp",
          "password",
          "iterations",
          "client-cert",
          "force",
        ]
      ) {
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
        const name = oneName();
        const out = stringFlag(p, "out");
        const server = stringFlag(p, "server");
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
        const password = boolFlag(p, "password")
          ? await readPassword(`Password for "${name}"`, { confirm: true })
          : undefined;
        const r = await asUsageError(addUser(name, {
          ...(password === undefined ? {} : { password }),
          ...(iterations === undefined ? {} : { iterations }),
          dir,
          ...(out === undefined ? {} : { out }),
          ...(server === undefined ? {} : { server }),
          ...(routes === undefined ? {} : { routes }),
          totp: boolFlag(p, "totp"),
          clientCert: boolFlag(p, "client-cert"),
          force: boolFlag(p, "force"),
        }));
        const prof = parseClientConfig(r.profileYaml, r.profilePath);
        console.log(
          [
            `Added user "${name}" to ${r.usersFile} (routes: ${(routes ?? ["*"]).join(",")}).`,
            `Wrote client profile ${r.profilePath} (mode 0600).`,
            "",
            `Share link (secret: it holds ${name}'s private key${
              password === undefined ? " and token" : "; the password is not in it"
            }):`,
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
        const file = await asUsageError(removeUser(name, dir));
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
