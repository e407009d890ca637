/**
 * `nitrosocks relay --listen HOST:PORT --upstream HOST:PORT`: an untrusted
 * forwarder in front of a server (or another relay).
 *
 * @module
 */
import { startRelay } from "../tunnel/relay.ts";
import { createLogger } from "../observe/mod.ts";
import {
  boolFlag,
  logLevelFlag,
  parseFlags,
  parseHostPort,
  stringFlag,
  UsageError,
} from "./args.ts";
import type { Command } from "./mod.ts";

const usage = `Usage: nitrosocks relay --listen HOST:PORT --upstream HOST:PORT [options]

Forwards NitroSocks connections to an upstream server (or the next relay). The relay
holds no NitroSocks key: it can neither read nor alter the tunnel; a relay that tampers
only breaks its own path, and clients move their sessions to another endpoint.

Options:
  --listen HOST:PORT      where clients connect (required)
  --upstream HOST:PORT    the server or next relay (required)
  --cert FILE --key FILE  TLS certificate and key to present (PEM); e.g. a server
                          directory's tls/server.crt and tls/server.key
  --tcp                   accept plain TCP instead of TLS (no --cert/--key needed)
  --upstream-ca FILE      CA (PEM) to trust for the upstream's TLS certificate
  --upstream-name NAME    name to check on the upstream's certificate (default: its host)
  --upstream-tcp          connect to the upstream over plain TCP
  --log-level LEVEL       debug, info, warn or error (default info)
  -h, --help              show this help`;

async function readPem(file: string, what: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new Error(`Cannot read ${what} "${file}": ${e instanceof Error ? e.message : e}`);
  }
  if (!text.includes("-----BEGIN ")) {
    throw new Error(`Cannot use ${what} "${file}": it holds no PEM block`);
  }
  return text;
}

export const relayCommand: Command = {
  name: "relay",
  summary: "forward tunnels to a server without being able to read them",
  usage,
  async run(args) {
    const p = parseFlags(args, {
      listen: { type: "string" },
      upstream: { type: "string" },
      cert: { type: "string" },
      key: { type: "string" },
      tcp: { type: "boolean" },
      "upstream-ca": { type: "string" },
      "upstream-name": { type: "string" },
      "upstream-tcp": { type: "boolean" },
      "log-level": { type: "string" },
    });
    if (p.positionals.length > 0) throw new UsageError(`Unexpected argument "${p.positionals[0]}"`);
    const listenS = stringFlag(p, "listen");
    const upstreamS = stringFlag(p, "upstream");
    if (listenS === undefined) throw new UsageError("Missing --listen HOST:PORT");
    if (upstreamS === undefined) throw new UsageError("Missing --upstream HOST:PORT");
    const level = logLevelFlag(p, "info");
    const tcp = boolFlag(p, "tcp");
    const certFile = stringFlag(p, "cert");
    const keyFile = stringFlag(p, "key");
    if (!tcp && (certFile === undefined || keyFile === undefined)) {
      throw new UsageError("A TLS relay needs --cert FILE and --key FILE (or --tcp for plain TCP)");
    }
    const caFile = stringFlag(p, "upstream-ca");
    const upstream = parseHostPort(upstreamS, "--upstream address");
    const name = stringFlag(p, "upstream-name");
    const log = createLogger(level, "relay");
    const relay = await startRelay({
      listen: parseHostPort(listenS, "--listen address"),
      transport: tcp ? "tcp" : "tls",
      ...(tcp ? {} : {
        certPem: await readPem(certFile!, "--cert"),
        keyPem: await readPem(keyFile!, "--key"),
      }),
      upstream: {
        host: upstream.host,
        port: upstream.port,
        transport: boolFlag(p, "upstream-tcp") ? "tcp" : "tls",
        ...(name === undefined ? {} : { serverName: name }),
        ...(caFile === undefined ? {} : { caPem: await readPem(caFile, "--upstream-ca") }),
      },
      log,
    });
    console.log(`relay ready on ${relay.addr.hostname}:${relay.addr.port}`);
    const stop = () => relay.close();
    const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
    for (const s of signals) Deno.addSignalListener(s, stop);
    await relay.done;
    return 0;
  },
};
