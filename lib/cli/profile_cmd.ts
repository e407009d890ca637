/**
 * `nitrosocks profile import [LINK]`: turns a `nitrosocks://` share link
 * into a profile file (mode 0600), fetching and checking the server's CA
 * when the link names it by hash.
 *
 * @module
 */
import { parseClientConfig } from "../config/mod.ts";
import { writeNewFile } from "../provision/mod.ts";
import { resolveShareLink } from "../tunnel/profile_source.ts";
import { boolFlag, parseFlags, parseHostPort, stringFlag, UsageError } from "./args.ts";
import type { Command } from "./mod.ts";
import { readLink } from "./secret.ts";

const USAGE = `Usage: nitrosocks profile import [LINK] [--out FILE] [--server HOST:PORT] [--force]

Writes the client profile a nitrosocks:// share link carries to a file (mode
0600), ready for 'nitrosocks client --config FILE'. The link is read from
standard input (pasted with echo off on a terminal, or piped), or taken from
LINK; standard input keeps it out of 'ps' and the shell history.

When the link names the server's CA by its SHA-256 (links 'user add' prints
for a server made by 'init'), the server's TLS certificate chain is fetched
once and the CA whose hash matches goes into the profile; a server that
sends another CA is refused.

Options:
  --out FILE          where to write the profile (default ./USER.yml)
  --server HOST:PORT  fetch the CA from here instead of the link's address
                      (the profile keeps the link's address)
  --force             overwrite an existing file
  -h, --help          show this help`;

/** The `profile` subcommand. */
export const profileCommand: Command = {
  name: "profile",
  summary: "Import a nitrosocks:// share link into a profile file",
  usage: USAGE,
  async run(args) {
    const [sub, ...rest] = args;
    if (sub !== "import") {
      throw new UsageError(
        sub === undefined
          ? "missing subcommand: import"
          : `unknown subcommand "${sub}": expected import`,
      );
    }
    const p = parseFlags(rest, {
      out: { type: "string" },
      server: { type: "string" },
      force: { type: "boolean" },
    });
    if (p.positionals.length > 1) throw new UsageError(`unexpected argument "${p.positionals[1]}"`);
    const given = p.positionals[0];
    const link = given === undefined || given === "-" ? await readLink() : given;
    const server = stringFlag(p, "server");
    const yaml = await resolveShareLink(link, {
      ...(server === undefined ? {} : { server: parseHostPort(server, "--server address") }),
    });
    const config = parseClientConfig(yaml, "<share link>");
    const out = stringFlag(p, "out") ?? `${config.user}.yml`;
    const force = boolFlag(p, "force");
    try {
      await writeNewFile(out, yaml, { overwrite: force });
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) {
        throw new Error(
          `Refusing to overwrite "${out}": it already exists (use --force or --out FILE)`,
        );
      }
      throw e;
    }
    await Deno.chmod(out, 0o600);
    console.log(
      [
        `Wrote client profile ${out} (mode 0600) for user "${config.user}" of ${config.server.host}:${config.server.port}.`,
        "Start the client with:",
        `  nitrosocks client --config ${out}`,
      ].join("\n"),
    );
    return 0;
  },
};
