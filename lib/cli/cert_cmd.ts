/**
 * `nitrosocks cert renew --dir DIR`: the command line of `renewServerCert`
 * in `lib/provision`: a fresh certificate from the directory's own CA, which
 * a running server picks up by itself.
 *
 * @module
 */
import { renewServerCert } from "../provision/mod.ts";
import { asUsageError, parseFlags, stringFlag, UsageError } from "./args.ts";
import type { Command } from "./mod.ts";

const USAGE = `Usage: nitrosocks cert renew [--dir DIR] [--days N]

Issues a fresh TLS certificate (new key, same names) from the private CA
that "nitrosocks init" made in DIR/tls and replaces the files server.yml
names. A running server uses it for new connections at once; clients keep
working (they trust the same CA). Run it from cron well before the old one
expires (it lasts 90 days by default).

Options:
  --dir DIR   server directory holding server.yml (default .)
  --days N    validity in days (default 90, at most 825)`;

/** The `cert` subcommand. */
export const certCommand: Command = {
  name: "cert",
  summary: "Renew the server's TLS certificate from its private CA",
  usage: USAGE,
  async run(args) {
    const [sub, ...rest] = args;
    if (sub !== "renew") {
      throw new UsageError(
        sub === undefined ? "missing sub-command renew" : `unknown sub-command "${sub}"`,
      );
    }
    const p = parseFlags(rest, { dir: { type: "string" }, days: { type: "string" } });
    if (p.positionals.length > 0) throw new UsageError(`unexpected argument "${p.positionals[0]}"`);
    const dir = stringFlag(p, "dir") ?? ".";
    const daysText = stringFlag(p, "days");
    const days = daysText === undefined ? undefined : Number(daysText);
    const r = await asUsageError(renewServerCert(dir, days === undefined ? {} : { days }));
    const names = [...r.dnsNames, ...r.ips].join(", ");
    console.log(`Renewed ${r.certFile} for ${names}, valid until ${r.notAfter.toISOString()}`);
    return 0;
  },
};
