/**
 * A server of a fleet killed with SIGKILL during a transfer: three real
 * `nitrosocks server` processes (under the permissions the executables
 * embed) share one redis-server and one ticket key file behind HAProxy
 * (round-robin, PROXY v2). The client's transfer through the dead server
 * breaks; the client reconnects through HAProxy, lands on a live server,
 * resumes its login with its ticket (no full login), and new streams work
 * — even for a user capped at one tunnel, whose lease on the dead server
 * has not expired yet (the lease is named by the session id the ticket
 * carries).
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { join } from "node:path";
import { loadClientConfig } from "../../lib/config/mod.ts";
import { encodeTicketKeys, generateTicketKey } from "../../lib/handshake/ticket.ts";
import { EventHub, EventLog } from "../../lib/observe/mod.ts";
import { addUser, initServerDir } from "../../lib/provision/mod.ts";
import { startClient } from "../../lib/tunnel/client.ts";
import { ReleaseReason } from "../../lib/session/mod.ts";
import { expectedSha256, startHttpTarget } from "../support/http_target.ts";
import { hasProgram, startHaproxy } from "../support/fronts.ts";
import { type NitroProcess, startNitrosocks } from "../support/nitro_process.ts";
import { hasRedis, startRedis } from "../support/redis.ts";
import { test, waitFor } from "../support/deadline.ts";
import { freePort, Logs, LOOPBACK_ROUTES } from "./_harness.ts";
import { sha256File, startCurl } from "./_paths.ts";

const MiB = 1024 * 1024;
const ignore = !(await hasRedis()) || !(await hasProgram("haproxy"));

/** A counter's value in a /metrics text, 0 when absent. */
function metric(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.slice(series.length + 1));
}

test.slow(
  "kill -9 one server of the fleet during a transfer: the client resumes on another with its ticket, new streams work",
  {
    ignore,
  },
  async () => {
    await using redis = await startRedis();
    await using target = await startHttpTarget();
    const dir = await Deno.makeTempDir({ prefix: "nitrosocks-fleet-crash-" });
    const servers: NitroProcess[] = [];
    const logs = new Logs();
    let closeClient = () => Promise.resolve();
    try {
      await initServerDir(dir, { listen: "127.0.0.1:0", name: "localhost" });
      const profilePath = join(dir, "alice.yml");
      await addUser("alice", {
        dir,
        out: profilePath,
        server: "127.0.0.1:9",
        routes: [...LOOPBACK_ROUTES],
        maxTunnels: 1,
      });
      await Deno.writeTextFile(join(dir, "ticket.keys"), encodeTicketKeys([generateTicketKey(1)]), {
        mode: 0o600,
      });
      const base = await Deno.readTextFile(join(dir, "server.yml"));
      const ports: number[] = [];
      const admins: number[] = [];
      for (let i = 0; i < 3; i++) {
        const port = freePort();
        const admin = freePort();
        ports.push(port);
        admins.push(admin);
        const yml = join(dir, `server-${i}.yml`);
        await Deno.writeTextFile(
          yml,
          `${base.replace(/^listen: .*$/m, `listen: "127.0.0.1:${port}"`).trimEnd()}
proxy_protocol: true
session:
  ticket_keys: ticket.keys
accounting:
  state_file: state-${i}.json
  flush_interval: 1s
admin:
  listen: "127.0.0.1:${admin}"
store:
  url: ${JSON.stringify(redis.url)}
`,
        );
        servers.push(startNitrosocks(["server", "--config", yml]));
      }
      for (const [i, s] of servers.entries()) {
        await s.waitForOutput(/listening on tls:\/\//, `server ${i} to listen`);
      }
      await using haproxy = await startHaproxy({
        upstreamPort: ports[0]!,
        moreUpstreamPorts: ports.slice(1),
      });

      const hub = new EventHub();
      const events = new EventLog(hub);
      const client = await startClient({
        profile: await loadClientConfig(profilePath),
        log: logs.logger("client"),
        events: hub,
        server: { host: "127.0.0.1", port: haproxy.port },
        socks: { host: "127.0.0.1", port: 0 },
      });
      closeClient = async () => {
        await client.close();
        events.close();
      };
      await client.tunnel();
      let holder = -1;
      await waitFor("a server to report alice's login", () => {
        holder = servers.findIndex((s) =>
          /user "alice" connected from 127\.0\.0\.1/.test(s.output())
        );
        return holder >= 0;
      }, 10_000);

      // A transfer through the holder, paced so it is still running when the server dies.
      const live = startCurl(
        client.socksAddr.port,
        `${target.url}/bytes/${256 * MiB}`,
        "/dev/null",
        {
          limitRate: "4M",
        },
      );
      await new Promise((r) => setTimeout(r, 1_000));
      servers[holder]!.signal("SIGKILL");
      await servers[holder]!.status;
      const broken = await live.done;
      assert.notEqual(broken.code, 0, "the transfer through the dead server broke");

      await waitFor("the client to resume", () => client.resumptions >= 1, 20_000);
      const out = join(dir, "body");
      const n = 4 * MiB;
      const r = await startCurl(client.socksAddr.port, `${target.url}/bytes/${n}`, out).done;
      assert.equal(r.code, 0, `${r.stderr}\n${logs.lines.join("\n")}`);
      assert.equal(await sha256File(out), expectedSha256(n));

      // The survivor that took the client resumed its login by ticket; no full login anywhere else
      // (the servers' own counters: the per-user series are the fleet's totals).
      const texts = await Promise.all(
        admins.filter((_, i) => i !== holder).map(async (p) =>
          await (await fetch(`http://127.0.0.1:${p}/metrics`)).text()
        ),
      );
      const resumed = texts.map((t) => metric(t, 'nitrosocks_logins_total{result="resumed"}'));
      const full = texts.map((t) => metric(t, 'nitrosocks_logins_total{result="ok"}'));
      assert.deepEqual(resumed.sort(), [0, 1], texts.join("\n"));
      assert.deepEqual(full, [0, 0]);
      // max_tunnels 1: the resumed tunnel kept its place although the dead server's lease lives on.
      assert.equal(
        events.of("release", (e) => e.notice === ReleaseReason.LIMIT).length,
        0,
        logs.lines.join("\n"),
      );
    } finally {
      await closeClient();
      for (const s of servers) await s.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
