/**
 * `nitrosocks demo`: a real server and client on loopback with throwaway
 * keys in a temporary directory; fetches a page from a built-in local web
 * site through the SOCKS5 port, shows that a browser-like probe of the
 * server gets only a decoy site, and says what happened.
 *
 * @module
 */
import { loadClientConfig, loadServerConfig, loadUsers } from "../config/mod.ts";
import { startClient } from "../tunnel/client.ts";
import { startServer } from "../tunnel/server.ts";
import { createLogger } from "../observe/mod.ts";
import { encodeRequest } from "../socks5/mod.ts";
import { writeAll } from "../transport/types.ts";
import { addUser, initServerDir } from "../provision/mod.ts";
import { logLevelFlag, parseFlags, UsageError } from "./args.ts";
import { reloadUsers } from "./server_cmd.ts";
import type { Command } from "./mod.ts";
import { describeCryptoBackend } from "../record/mod.ts";
import { useCryptoBackend } from "./crypto.ts";

const usage = `Usage: nitrosocks demo [--log-level LEVEL] [--keep]

Runs a real NitroSocks server and client on loopback with throwaway keys in a
temporary directory, fetches a page from a built-in local web site through the
client's SOCKS5 port (server and client talk TLS 1.3 with the NitroSocks
handshake and records inside), probes the server like a browser would, prints
what happened and exits 0.

Options:
  --log-level LEVEL   show the server's and client's logs at LEVEL (default: none)
  --keep              keep the temporary directory (keys, configs, profile)
  -h, --help          show this help`;

const PAGE = "<!doctype html><title>NitroSocks demo</title><h1>Hello through the tunnel</h1>\n";

/** A minimal SOCKS5 CONNECT to an IPv4 address and an HTTP GET. */
async function fetchThroughSocks(
  socksPort: number,
  host: string,
  port: number,
  path: string,
): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: socksPort });
  try {
    const buf = new Uint8Array(64 * 1024);
    const readAtLeast = async (n: number): Promise<Uint8Array> => {
      let got = 0;
      while (got < n) {
        const r = await conn.read(buf.subarray(got));
        if (r === null) throw new Error("SOCKS5 proxy closed the connection");
        got += r;
      }
      return buf.slice(0, got);
    };
    await writeAll(conn, new Uint8Array([5, 1, 0]));
    const method = await readAtLeast(2);
    if (method[0] !== 5 || method[1] !== 0) throw new Error("SOCKS5 proxy refused no-auth");
    await writeAll(conn, encodeRequest({ command: "connect", addressType: "ipv4", host, port }));
    const head = await readAtLeast(5);
    if (head[1] !== 0) throw new Error(`SOCKS5 CONNECT failed with reply ${head[1]}`);
    const addrLen = head[3] === 1 ? 4 : head[3] === 4 ? 16 : 1 + head[4]!;
    if (head.length < 4 + addrLen + 2) await readAtLeast(4 + addrLen + 2);
    const req = `GET ${path} HTTP/1.1\r\nHost: ${host}:${port}\r\nConnection: close\r\n\r\n`;
    await writeAll(conn, new TextEncoder().encode(req));
    const chunks: Uint8Array[] = [];
    while (true) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    return new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
  } finally {
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}

export const demoCommand: Command = {
  name: "demo",
  summary: "run a server and client on loopback and fetch a page through them",
  usage,
  async run(args) {
    const p = parseFlags(args, { "log-level": { type: "string" }, keep: { type: "boolean" } });
    if (p.positionals.length > 0) throw new UsageError(`Unexpected argument "${p.positionals[0]}"`);
    const level = logLevelFlag(p, undefined);
    const quiet = level === undefined;
    const log = createLogger(level ?? "error", "", quiet ? () => {} : undefined);
    log.info(`crypto backend: ${describeCryptoBackend(useCryptoBackend({ backend: "auto" }))}`);
    const dir = await Deno.makeTempDir({ prefix: "nitrosocks-demo-" });
    const say = (s: string) => console.log(s);
    const site = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
      const url = new URL(req.url);
      if (url.pathname === "/") {
        return new Response(PAGE, { headers: { "content-type": "text/html" } });
      }
      return new Response("not found\n", { status: 404 });
    });
    const sitePort = (site.addr as Deno.NetAddr).port;
    let server: Awaited<ReturnType<typeof startServer>> | undefined;
    let client: Awaited<ReturnType<typeof startClient>> | undefined;
    try {
      say(`1. Making a server directory with fresh keys and a TLS CA in ${dir}`);
      await initServerDir(dir, { listen: "127.0.0.1:0", name: "localhost" });
      const serverConfig = await loadServerConfig(`${dir}/server.yml`);
      const serverLog = log.child("server");
      const { users } = await loadUsers(serverConfig.usersFile);
      server = await startServer({ ...serverConfig, users, log: serverLog });
      say(`2. Server listening on TLS ${server.addr.hostname}:${server.addr.port}`);
      const added = await addUser("demo", {
        dir,
        out: `${dir}/demo.yml`,
        server: `127.0.0.1:${server.addr.port}`,
        // The demo's site is on loopback, which egress.block keeps from every
        // user whose routes do not name it: say so, as a real user would.
        routes: ["127.0.0.1:*"],
      });
      await reloadUsers(server, serverConfig.usersFile, serverLog);
      say(
        `   added user "demo" (client key + token, routes 127.0.0.1:*) and reloaded users.yml; profile ${added.profilePath}`,
      );

      const profile = await loadClientConfig(added.profilePath);
      const t0 = performance.now();
      client = await startClient({
        profile,
        log: log.child("client"),
        server: { host: "127.0.0.1", port: server.addr.port },
        socks: { host: "127.0.0.1", port: 0 },
        lazy: true,
      });
      await client.tunnel();
      const t1 = performance.now();
      say(
        `3. Client SOCKS5 on 127.0.0.1:${client.socksAddr.port}; tunnel up in ${
          (t1 - t0).toFixed(0)
        } ms ` +
          `(TLS 1.3, server key pinned, key + token login)`,
      );

      const response = await fetchThroughSocks(client.socksAddr.port, "127.0.0.1", sitePort, "/");
      const t2 = performance.now();
      const status = response.split("\r\n")[0] ?? "";
      const body = response.split("\r\n\r\n").slice(1).join("\r\n\r\n");
      if (!status.includes(" 200 ") || !body.includes("Hello through the tunnel")) {
        throw new Error(`Unexpected answer through the tunnel: ${status || "(empty)"}`);
      }
      say(
        `4. GET http://127.0.0.1:${sitePort}/ through the tunnel: ${status} in ${
          (t2 - t1).toFixed(0)
        } ms`,
      );
      say(`   body: ${body.trim()}`);

      const caPem = await Deno.readTextFile(`${dir}/tls/ca.crt`);
      const http = Deno.createHttpClient({ caCerts: [caPem] });
      try {
        const probe = await fetch(`https://localhost:${server.addr.port}/`, { client: http });
        const text = await probe.text();
        const title = /<title>([^<]*)<\/title>/.exec(text)?.[1] ?? "(no title)";
        say(
          `5. A browser-like probe of the server itself gets an ordinary web site: ` +
            `HTTP ${probe.status} "${title}"`,
        );
      } finally {
        http.close();
      }
      say("Done: a real request went through a real NitroSocks server and client.");
      say(
        `Try it yourself: curl --socks5-hostname 127.0.0.1:1080 http://example.com/ with 'nitrosocks client'.`,
      );
      return 0;
    } finally {
      await client?.close();
      await server?.close();
      await site.shutdown();
      if (p.values.keep === true) say(`Kept ${dir}`);
      else await Deno.remove(dir, { recursive: true });
    }
  },
};
