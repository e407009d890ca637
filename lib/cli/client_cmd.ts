/**
 * `nitrosocks client --config FILE`: runs the local SOCKS5 proxy that sends
 * every connection through the tunnel.
 *
 * @module
 */
import { describeCryptoBackend } from "../record/mod.ts";
import { type ClientConfig, watchFile } from "../config/mod.ts";
import { toBase64Url } from "../crypto/mod.ts";
import { type ClientHandle, startClient } from "../tunnel/client.ts";
import { loadProfile } from "../tunnel/profile_source.ts";
import { createLogger, describeError } from "../observe/mod.ts";
import { logLevelFlag, parseFlags, parseHostPort, stringFlag, UsageError } from "./args.ts";
import { useCryptoBackend } from "./crypto.ts";
import { readLink, readPassword } from "./secret.ts";
import { warnIfExposed } from "./file_modes.ts";
import type { Command } from "./mod.ts";

const usage =
  `Usage: nitrosocks client (--config FILE | --link -) [--socks HOST:PORT] [--server HOST:PORT] [--ca FILE]

Runs the local SOCKS5 proxy (default 127.0.0.1:1080) from a client profile made
by 'nitrosocks user add', or from its nitrosocks:// share link. A password
profile without password.value asks for the password (no echo), or reads the
first line of standard input when it is not a terminal. Point any program at
it, e.g.
  curl --socks5-hostname 127.0.0.1:1080 https://example.com/
The same port is an HTTP proxy (http_proxy=http://127.0.0.1:1080) and serves a
PAC file for browsers at http://127.0.0.1:1080/proxy.pac. The profile's
forwards: (fixed local TCP/UDP ports, like ssh -L) and dns: (a local DNS server
asking a resolver through the tunnel) start with it; see docs/CONFIG.md.

The client reloads a --config profile when the file changes and on SIGHUP: a
changed profile restarts the tunnel and listeners with it; one that does not
load changes nothing (the log says why).

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
    if (file !== undefined) await warnIfExposed(file, `user "${config.user}"'s private key`, log);
    const jwt = config.jwt;
    if (jwt !== undefined && "file" in jwt) {
      await warnIfExposed(jwt.file, `user "${config.user}"'s JWT`, log);
    }
    const backend = useCryptoBackend(config.crypto);
    log.info(`crypto backend: ${describeCryptoBackend(backend)}`);
    const overrides = {
      log,
      ...(socks === undefined ? {} : { socks: parseHostPort(socks, "--socks address") }),
      ...(serverAddr === undefined ? {} : { server: serverAddr }),
      ...(caPem === undefined ? {} : { caPem }),
    };
    let client = await startClient({ ...overrides, profile: config });
    const ready = (c: ClientHandle) =>
      console.log(`SOCKS5 proxy ready on ${c.socksAddr.hostname}:${c.socksAddr.port}`);
    ready(client);
    let lastText = file === undefined ? undefined : await Deno.readTextFile(file).catch(() => "");
    /**
     * Loads the profile again; a changed one restarts the tunnel and the
     * listeners with it, one that does not load changes nothing.
     */
    const reload = async (why: string) => {
      if (file === undefined) {
        log.warn(`${why}: the profile came from a link on standard input; nothing to reload`);
        return;
      }
      let next: ClientConfig;
      let text: string;
      try {
        text = await Deno.readTextFile(file);
        if (text === lastText) {
          log.info(`${why}: profile ${file} unchanged`);
          return;
        }
        next = await loadProfile(file, serverAddr === undefined ? {} : { server: serverAddr });
      } catch (e) {
        log.error(
          `${why}: profile ${file} not reloaded, keeping the running one: ${describeError(e)}`,
        );
        return;
      }
      if (next.password !== undefined && next.password.value === undefined) {
        // The password typed at start, when the salt is the same.
        const had = config.password;
        if (had?.value === undefined || toBase64Url(had.salt) !== toBase64Url(next.password.salt)) {
          log.error(
            `${why}: profile ${file} not reloaded: it needs a password; restart the client`,
          );
          return;
        }
        next = { ...next, password: { ...next.password, value: had.value } };
      }
      log.info(`${why}: profile ${file} changed; restarting the tunnel and listeners with it`);
      await client.close();
      try {
        client = await startClient({ ...overrides, profile: next });
        config = next;
        lastText = text;
      } catch (e) {
        log.error(`the new profile did not start (${describeError(e)}); back to the previous one`);
        client = await startClient({ ...overrides, profile: config });
      }
      ready(client);
    };
    let reloading = Promise.resolve();
    const queueReload = (why: string) => {
      reloading = reloading.then(() => reload(why)).catch((e) =>
        log.error(`reload failed: ${describeError(e)}`)
      );
    };
    const watch = file === undefined
      ? undefined
      : watchFile(file, () => queueReload("file changed"), {
        onError: (e) => log.warn(`no longer watching ${file}: ${describeError(e)}`),
      });
    if (Deno.build.os !== "windows") Deno.addSignalListener("SIGHUP", () => queueReload("SIGHUP"));
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      const signals: Deno.Signal[] = Deno.build.os === "windows"
        ? ["SIGINT"]
        : ["SIGINT", "SIGTERM"];
      for (const s of signals) Deno.addSignalListener(s, stop);
    });
    watch?.close();
    await reloading;
    log.info("stopping");
    await client.close();
    return 0;
  },
};
