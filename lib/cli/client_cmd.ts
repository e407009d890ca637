/**
 * `nitrosocks client --config FILE`: runs the local SOCKS5 proxy that sends
 * every connection through the tunnel.
 *
 * @module
 */
import { describeCryptoBackend } from "../record/mod.ts";
import { startClient } from "../tunnel/client.ts";
import { loadProfile } from "../tunnel/profile_source.ts";
import { createLogger } from "../observe/mod.ts";
import { logLevelFlag, parseFlags, parseHostPort, stringFlag, UsageError } from "./args.ts";
import { useCryptoBackend } from "./crypto.ts";
import { readLink, readPassword } from "./secret.ts";
import type { Command } from "./mod.ts";

const usage =
  `Usage: nitrosocks client (--config FILE | --link -) [--socks HOST:PORT] [--server HOST:PORT] [--ca FILE]

Runs the local SOCKS5 proxy (default 127.0.0.1:1080) from a client profile made by
'nitrosocks user add', or from its nitrosocks:// share link. A password profile without password.value asks for the
password (no echo), or reads the first line of standard input when it is not a
terminal. Point any program at it, e.g.
  curl --socks5-hostname 127.0.0.1:1080 https://example.com/

Options:
  --config FILE       the client profile, or a file holding its share link
  --link -            read the share link from standard input (never from the
                      command line, where 'ps' would show it); a link naming
                      the CA by hash fetches and checks it from the server
  --socks HOST:PORT   listen for SOCKS5 here instead of the profile's address
  --server HOST:PORT  dial this address instead of the profile's; the TLS name and
                      the pinned server key stay as in the profile
  --ca FILE           trust this CA (PEM) for TLS instead of the profile's
  --log-level LEVEL   debug, info, warn or error (default info)
  -h, --help          show this help`;

export const clientCommand: Command = {
  name: "client",
  summary: "run the local SOCKS5 proxy through the tunnel",
  usage,
  async run(args) {
    const p = parseFlags(args, {
      config: { type: "string" },
      link: { type: "string" },
      socks: { type: "string" },
      server: { type: "string" },
      ca: { type: "string" },
      "log-level": { type: "string" },
    });
    if (p.positionals.length > 0) throw new UsageError(`Unexpected argument "${p.positionals[0]}"`);
    const file = stringFlag(p, "config");
    const linkFlag = stringFlag(p, "link");
    if (file !== undefined && linkFlag !== undefined) {
      throw new UsageError("--config and --link both name the profile: give one of them");
    }
    if (linkFlag !== undefined && linkFlag !== "-") {
      throw new UsageError(
        "--link takes - and reads the link from standard input: a link on the command line " +
          "is visible to every user in 'ps' (or save it to a file and pass --config FILE)",
      );
    }
    if (file === undefined && linkFlag === undefined) {
      throw new UsageError(
        "Missing --config FILE (the profile from 'nitrosocks user add') or --link - (its share link on standard input)",
      );
    }
    const level = logLevelFlag(p, "info");
    const socks = stringFlag(p, "socks");
    const server = stringFlag(p, "server");
    const serverAddr = server === undefined ? undefined : parseHostPort(server, "--server address");
    const caFile = stringFlag(p, "ca");
    const source = file ?? await readLink();
    let config = await loadProfile(source, serverAddr === undefined ? {} : { server: serverAddr });
    if (config.password !== undefined && config.password.value === undefined) {
      // Asked once; the tunnel derives the SCRAM keys from it and never logs it.
      const value = await readPassword(`Password for "${config.user}"`);
      config = { ...config, password: { ...config.password, value } };
    }
    let caPem: string | undefined;
    if (caFile !== undefined) {
      try {
        caPem = await Deno.readTextFile(caFile);
      } catch (e) {
        throw new Error(`Cannot read --ca "${caFile}": ${e instanceof Error ? e.message : e}`);
      }
      if (!caPem.includes("-----BEGIN CERTIFICATE-----")) {
        throw new Error(`Cannot use --ca "${caFile}": it holds no PEM certificate`);
      }
    }
    const log = createLogger(level, "client");
    const backend = useCryptoBackend(config.crypto);
    log.info(`crypto backend: ${describeCryptoBackend(backend)}`);
    const client = await startClient({
      profile: config,
      log,
      ...(socks === undefined ? {} : { socks: parseHostPort(socks, "--socks address") }),
      ...(serverAddr === undefined ? {} : { server: serverAddr }),
      ...(caPem === undefined ? {} : { caPem }),
    });
    console.log(`SOCKS5 proxy ready on ${client.socksAddr.hostname}:${client.socksAddr.port}`);
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      const signals: Deno.Signal[] = Deno.build.os === "windows"
        ? ["SIGINT"]
        : ["SIGINT", "SIGTERM"];
      for (const s of signals) Deno.addSignalListener(s, stop);
    });
    log.info("stopping");
    await client.close();
    return 0;
  },
};
