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

const USAGE = `Usage: nitrosocks init DIR [--listen HOST:PORT] [--name DNS-NAME]
                       [--cert FILE --key FILE] [--force]

Creates a server directory: server.yml, users.yml, keys/server.key, and a
private CA with a 90-day TLS certificate under tls/ (or, with --cert and
--key, a server.yml that uses your own certificate).

Options:
  --listen HOST:PORT  address to accept tunnels on (default 0.0.0.0:8443)
  --name DNS-NAME     name for the TLS certificate (default localhost);
                      127.0.0.1 and ::1 are added only for a loopback
                      listen address or the name localhost
  --cert FILE         use this certificate chain (PEM, leaf first), e.g. an
                      ACME client's fullchain.pem, instead of making a CA;
                      the server reloads it when the file changes
  --key FILE          the private key of --cert
  --force             replace existing files (new keys; users.yml emptied)

Renew the certificate made here with "nitrosocks cert renew --dir DIR".`;

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
      cert: { type: "string" },
      key: { type: "string" },
    });
    const [dir, ...extra] = p.positionals;
    if (dir === undefined) throw new UsageError("missing DIR");
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
    const listen = stringFlag(p, "listen");
    const name = stringFlag(p, "name");
    const certFile = stringFlag(p, "cert");
    const keyFile = stringFlag(p, "key");
    const result = await asUsageError(initServerDir(dir, {
      ...(listen === undefined ? {} : { listen }),
      ...(name === undefined ? {} : { name }),
      ...(certFile === undefined ? {} : { certFile }),
      ...(keyFile === undefined ? {} : { keyFile }),
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
