/**
 * The real `nitrosocks client` program (main.ts under the shipped
 * permissions) with `forwards:` and `dns:` in its profile: a TCP forward to
 * an echo server, a UDP forward to a UDP echo and the DNS server asking a
 * real dnsmasq, all through a real server; a forward added to the profile
 * listens once the client has reloaded it.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { PERMISSION_FLAGS } from "../../scripts/compile.ts";
import { test, withDeadline } from "../support/deadline.ts";
import { spawnWithDeadline, waitListening } from "../support/process.ts";
import { readExact } from "../support/socks_client.ts";
import { startUdpEcho } from "../support/udp_echo.ts";
import { startDnsmasq } from "./_dnsmasq.ts";
import { freePort, run, startEchoServer, startPair, text } from "./_harness.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

test.slow("nitrosocks client with forwards: and dns: in its profile serves all three through the tunnel", async () => {
  await using tcpTarget = startEchoServer();
  await using udpTarget = startUdpEcho();
  await using upstream = await startDnsmasq({ "process.test": ["10.20.30.40"] });
  const [tcpPort, udpPort, dnsPort] = [freePort(), freePort(), freePort()];
  await using pair = await startPair({
    transport: "tcp",
    noClient: true,
    profileYaml: [
      "forwards:",
      `  - {listen: "127.0.0.1:${tcpPort}", to: "127.0.0.1:${tcpTarget.port}"}`,
      `  - {listen: "127.0.0.1:${udpPort}", to: "127.0.0.1:${udpTarget.port}", protocol: udp}`,
      "dns:",
      `  listen: "127.0.0.1:${dnsPort}"`,
      `  upstream: "127.0.0.1:${upstream.port}"`,
    ].join("\n"),
  });
  const client = spawnWithDeadline(
    Deno.execPath(),
    {
      args: [
        "run",
        "--quiet",
        ...PERMISSION_FLAGS,
        "main.ts",
        "client",
        "--config",
        pair.profilePath,
      ],
      cwd: ROOT,
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    },
    120_000,
    "the client, stopped by the test",
  );
  try {
    await waitListening("127.0.0.1", tcpPort, "the client's TCP forward");
    await waitListening("127.0.0.1", dnsPort, "the client's DNS server (TCP)");

    using conn = await Deno.connect({ hostname: "127.0.0.1", port: tcpPort });
    await conn.write(new TextEncoder().encode("through the forward"));
    assert.equal(new TextDecoder().decode(await readExact(conn, 19)), "through the forward");

    const sock = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    try {
      const to: Deno.NetAddr = { transport: "udp", hostname: "127.0.0.1", port: udpPort };
      for (let i = 0; i < 50; i++) {
        const d = new TextEncoder().encode(`datagram ${i}`);
        await sock.send(d, to);
        const [back] = await withDeadline(sock.receive(), 10_000, `the echo of datagram ${i}`);
        assert.deepEqual(back, d);
      }
    } finally {
      sock.close();
    }

    for (const tcp of [[], ["+tcp"]]) {
      const r = await run("dig", [
        "@127.0.0.1",
        "-p",
        String(dnsPort),
        "+short",
        "+time=5",
        ...tcp,
        "process.test",
      ], { timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(text(r).trim(), "10.20.30.40");
    }

    // The server carried all of it: the TCP forward's and the DNS-over-TCP streams, and the
    // associations of the UDP forward and the DNS server.
    const targets = pair.serverEvents.of("stream_open").map((e) => e.target);
    assert.ok(targets.includes(`127.0.0.1:${tcpTarget.port}`), targets.join());
    assert.ok(targets.includes(`127.0.0.1:${upstream.port}`), targets.join());
    assert.equal(pair.serverEvents.of("udp_open").length, 2);

    // A forward added to the profile is listening after the client reloads it (file watch).
    const added = freePort();
    const yaml = await Deno.readTextFile(pair.profilePath);
    await Deno.writeTextFile(
      pair.profilePath,
      yaml.replace(
        "forwards:\n",
        `forwards:\n  - {listen: "127.0.0.1:${added}", to: "127.0.0.1:${tcpTarget.port}"}\n`,
      ),
    );
    await waitListening("127.0.0.1", added, "the forward added by a reload");
    using again = await Deno.connect({ hostname: "127.0.0.1", port: added });
    await again.write(new TextEncoder().encode("after reload"));
    assert.equal(new TextDecoder().decode(await readExact(again, 12)), "after reload");
  } finally {
    client.child.kill("SIGTERM");
  }
  const out = await client.output;
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, stderr);
  assert.doesNotMatch(stderr, /PermissionDenied|NotCapable|Requires .* access/);
  assert.match(stderr, new RegExp(`tcp 127\\.0\\.0\\.1:${tcpPort} forwarded to 127\\.0\\.0\\.1:`));
  assert.match(stderr, new RegExp(`udp 127\\.0\\.0\\.1:${udpPort} forwarded to 127\\.0\\.0\\.1:`));
  assert.match(stderr, new RegExp(`DNS \\(udp\\) on 127\\.0\\.0\\.1:${dnsPort}, asking`));
});
