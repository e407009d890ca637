/**
 * `nitrosocks user add|list|remove`: the command line of `addUser`,
 * `listUsers` and `removeUser` in `lib/provision`: flags in, the profile
 * link or the user table out.
 *
 * @module
 */
import { parseClientConfig, parseDuration, type UserEntry } from "../config/mod.ts";
import { addUser, issueUserToken, listUsers, removeUser } from "../provision/mod.ts";
import { fromBase64Url, toBase64Url } from "../crypto/mod.ts";
import { formatHostPort } from "../wire/host_port.ts";
import { asUsageError, boolFlag, parseFlags, stringFlag, UsageError } from "./args.ts";
import type { Command } from "./mod.ts";
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

/** Formats users as an aligned table. */
export function formatUserTable(users: UserEntry[], now = new Date()): string {
  const rows = [
    ["NAME", "LOGIN", "ROUTES", "EXPIRES", "STATUS"],
    ...users.map((u) => [
      u.name,
      factorOf(u),
      u.routes.length === 0 ? "(none)" : u.routes.join(","),
      u.expires?.toISOString() ?? "never",
      status(u, now),
    ]),
  ];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n");
}

const USAGE = `Usage:
  nitrosocks user add NAME --dir DIR [--out FILE] [--server HOST:PORT | --url URL] [--routes GLOB,...]
                     [--totp] [--password [--iterations N] | --jwt | --jwt-secret | --jwt-key KEY]
                     [--client-cert] [--force]
  nitrosocks user token NAME --dir DIR [--ttl DURATION] [--routes GLOB,...] [--out FILE]
  nitrosocks user list --dir DIR
  nitrosocks user remove NAME --dir DIR

add      makes a key pair and token for NAME, adds NAME to DIR's users.yml and
         writes the client profile (mode 0600) and a nitrosocks:// share link
list     shows names, routes, expiry and status
remove   deletes NAME from users.yml
token    signs a JWT for a JWT user with their HS256 secret (or auth.jwt's first
         secret) and prints it, or writes it to --out (mode 0600)

Options:
  --dir DIR           server directory holding server.yml (default .)
  --out FILE          where to write the profile (default ./NAME.yml)
  --server HOST:PORT  address clients dial (default the listen address;
                      0.0.0.0 becomes 127.0.0.1)
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
                      keeps only the salt, iteration count, StoredKey and ServerKey
  --iterations N      PBKDF2 iterations for --password (default 600000, at least 4096)
  --jwt               log in with a JWT instead of a token, verified with server.yml's
                      auth.jwt keys; the profile reads the token from NAME.jwt next to it
  --jwt-secret        --jwt with a fresh per-user HS256 secret (printed once, kept in
                      users.yml); a first token valid for a day is written to NAME.jwt
  --jwt-key KEY       --jwt accepting EdDSA tokens signed by this Ed25519 public key
                      (32 bytes, base64url)
  --ttl DURATION      token: lifetime, e.g. 1h, 30m (default 1h)
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
    });
    const dir = stringFlag(p, "dir") ?? ".";
    const onlyFor = (allowed: string[]) => {
      for (
        const f of [
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
        }));
        const prof = parseClientConfig(r.profileYaml, r.profilePath);
        console.log(
          [
            `Added user "${name}" to ${r.usersFile} (routes: ${(routes ?? ["*"]).join(",")}).`,
            `Wrote client profile ${r.profilePath} (mode 0600).`,
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
          await Deno.writeTextFile(out, `${token}\n`, { mode: 0o600 });
          await Deno.chmod(out, 0o600);
          console.log(`Wrote a JWT for "${name}" valid ${ttlText} to ${out} (mode 0600).`);
        }
        return 0;
      }
      case undefined:
        throw new UsageError("missing subcommand: add, list, remove or token");
      default:
        throw new UsageError(`unknown subcommand "${sub}": expected add, list, remove or token`);
    }
  },
};
