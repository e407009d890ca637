/**
 * `nitrosocks init DIR`: the command line of `initServerDir` in
 * `lib/provision` (server key, private CA and TLS certificate, commented
 * `server.yml`, empty `users.yml`): flags in, summary out.
 *
 * @module
 */
import { join } from "node:path";
import { toBase64Url } from "../crypto/mod.ts";
import { initServerDir } from "../provision/mod.ts";
import { asUsageError, boolFlag, parseFlags, stringFlag, UsageError } from "./args.ts";
import type { Command } from "./mod.ts";

const USAGE = `Usage: nitrosocks init DIR [--listen HOST:PORT] [--name DNS-NAME] [--force]

Creates a server directory: server.yml, users.yml, keys/server.key, and a
private CA with a TLS certificate under tls/.

Options:
  --listen HOST:PORT  address to accept tunnels on (default 0.0.0.0:8443)
  --name DNS-NAME     name for the TLS certificate (default localhost); the
                      listen IP, 127.0.0.1 and ::1 are added too
  --force             replace existing files (new keys; users.yml emptied)`;

/** The `init` subcommand. */
export const initCommand: Command = {
  name: "init",
  summary: "Create a server directory: keys, TLS certificate, config",
  usage: USAGE,
  async run(args) {
    const p = parseFlags(args, {
      listen: { type: "string" },
      name: { type: "string" },
      force: { type: "boolean" },
    });
    const [dir, ...extra] = p.positionals;
    if (dir === undefined) throw new UsageError("missing DIR");
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
    const listen = stringFlag(p, "listen");
    const name = stringFlag(p, "name");
    const result = await asUsageError(initServerDir(dir, {
      ...(listen === undefined ? {} : { listen }),
      ...(name === undefined ? {} : { name }),
      force: boolFlag(p, "force"),
    }));
    console.log(
      [
        `Created server directory ${dir}:`,
        ...result.files.map((f) => `  ${f}`),
        "",
        "Server public key (clients pin this; user profiles include it):",
        `  ${toBase64Url(result.serverPublicKey)}`,
        "",
        "Next steps:",
        `  nitrosocks user add NAME --dir ${dir}     # add a user, print their profile link`,
        `  nitrosocks server --config ${join(dir, "server.yml")}`,
      ].join("\n"),
    );
    return 0;
  },
};
