import assert from "node:assert/strict";
import { join } from "node:path";
import { x25519 } from "@noble/curves/ed25519.js";
import { initCommand } from "../../lib/cli/init.ts";
import { certCommand } from "../../lib/cli/cert_cmd.ts";
import { formatUserTable, userCommand } from "../../lib/cli/user.ts";
import { UsageError } from "../../lib/cli/args.ts";
import { toBase64Url } from "../../lib/crypto/mod.ts";
import {
  certificateHashes,
  decodeShareLink,
  loadClientConfig,
  loadServerConfig,
  loadUsers,
  shareLinkProfile,
} from "../../lib/config/mod.ts";
import { decodeServerIdentity, serverPublicKey } from "../../lib/handshake/mod.ts";
import { certificateNames } from "../../lib/pki/mod.ts";
import { test } from "../support/deadline.ts";
import decodeQR from "@paulmillr/qr/decode.js";
import { assertRejectsWith } from "../support/assert.ts";
import { readToEnd, writeAll } from "../support/io.ts";
import { serveConnections } from "../support/serve.ts";

/** Runs a command with console.log captured; returns exit code and output. */
async function run(
  cmd: typeof initCommand,
  args: string[],
): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const orig = console.log;
  console.log = (...a: unknown[]) => lines.push(a.join(" "));
  try {
    const code = await cmd.run(args);
    return { code, out: lines.join("\n") };
  } finally {
    console.log = orig;
  }
}

async function mode(path: string): Promise<number> {
  return (await Deno.stat(path)).mode! & 0o777;
}

const SECRET_FILES = ["server.yml", "users.yml", "keys/server.key", "tls/ca.key", "tls/server.key"];

test("init writes a loadable server directory with private files at 0600", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const { code, out } = await run(initCommand, [dir]);
    assert.equal(code, 0);
    const cfg = await loadServerConfig(join(dir, "server.yml"));
    assert.deepEqual(cfg.listen, { host: "0.0.0.0", port: 8443 });
    assert.equal(cfg.transport, "tls");
    assert.equal((await loadUsers(cfg.usersFile)).users.size, 0);
    const pub = toBase64Url(serverPublicKey(decodeServerIdentity(cfg.identity)));
    assert.ok(out.includes(pub), "prints the server public key");
    assert.ok(out.includes(`nitrosocks user add NAME --dir ${dir}`));
    for (const f of SECRET_FILES) assert.equal(await mode(join(dir, f)), 0o600, f);
    assert.deepEqual(certificateNames(cfg.tls!.certPem), {
      dnsNames: ["localhost"],
      ips: ["127.0.0.1", "::1"],
    });
    assert.match(
      await Deno.readTextFile(join(dir, "server.yml")),
      /^# NitroSocks server configuration/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("init refuses to overwrite without --force, then --force replaces the keys", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(join(dir, "keys"));
    await Deno.writeTextFile(join(dir, "keys/server.key"), "precious");
    await assert.rejects(
      run(initCommand, [dir]),
      (e: Error) =>
        e.message.includes(`"${join(dir, "keys/server.key")}"`) && e.message.includes("--force"),
    );
    assert.equal(await Deno.readTextFile(join(dir, "keys/server.key")), "precious");
    await assertRejectsWith(
      Deno.stat(join(dir, "server.yml")),
      Deno.errors.NotFound,
      "No such file or directory (os error 2): stat '",
    );
    await Deno.chmod(join(dir, "keys/server.key"), 0o644);
    assert.equal((await run(initCommand, [dir, "--force"])).code, 0);
    assert.notEqual(await Deno.readTextFile(join(dir, "keys/server.key")), "precious");
    assert.equal(await mode(join(dir, "keys/server.key")), 0o600);
    await loadServerConfig(join(dir, "server.yml"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("init --force and user add --force leave every file they replace at mode 0600", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.equal((await run(initCommand, [dir])).code, 0);
    const profile = join(dir, "p.yml");
    const jwtFile = join(dir, "p.jwt");
    // Files a careless operator (or an editor) left readable by everyone.
    await Deno.writeTextFile(profile, "old\n", { mode: 0o644 });
    await Deno.writeTextFile(jwtFile, "old\n", { mode: 0o644 });
    const all = [...SECRET_FILES.map((f) => join(dir, f)), profile, jwtFile];
    for (const f of all) await Deno.chmod(f, 0o644);
    const add = ["add", "--dir", dir, "--out", profile, "--server", "127.0.0.1:8443", "--force"];
    assert.equal((await run(userCommand, [...add.slice(0, 1), "erin", ...add.slice(1)])).code, 0);
    assert.equal(await mode(profile), 0o600, "profile");
    await Deno.chmod(profile, 0o644);
    await Deno.chmod(join(dir, "users.yml"), 0o644);
    const jwt = [...add.slice(0, 1), "fay", ...add.slice(1), "--jwt-secret"];
    assert.equal((await run(userCommand, jwt)).code, 0);
    assert.equal(await mode(profile), 0o600, "profile");
    assert.equal(await mode(jwtFile), 0o600, "JWT file");
    assert.equal(await mode(join(dir, "users.yml")), 0o600, "users.yml");
    for (const f of SECRET_FILES) await Deno.chmod(join(dir, f), 0o644);
    assert.equal((await run(initCommand, [dir, "--force"])).code, 0);
    for (const f of SECRET_FILES) assert.equal(await mode(join(dir, f)), 0o600, f);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("user add --jwt without auth.jwt keys in server.yml is refused with what to configure", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.equal((await run(initCommand, [dir])).code, 0);
    const out = join(dir, "g.yml");
    const args = ["add", "gil", "--dir", dir, "--out", out, "--server", "127.0.0.1:8443", "--jwt"];
    await assert.rejects(run(userCommand, args), (e: Error) => {
      assert.match(e.message, /has no auth\.jwt keys to verify the user's tokens/);
      assert.match(e.message, /add auth\.jwt\.secrets \(HS256\) or auth\.jwt\.public_keys/);
      assert.match(e.message, /--jwt-secret .*or --jwt-key KEY/);
      return true;
    });
    await assertRejectsWith(Deno.stat(out), Deno.errors.NotFound, "No such file");
    const server = await loadServerConfig(join(dir, "server.yml"));
    assert.equal((await loadUsers(server.usersFile)).users.size, 0, "nothing was added");
    // With a server-wide key, the same command works.
    const yml = join(dir, "server.yml");
    const secret = toBase64Url(new Uint8Array(32).fill(5));
    const text = await Deno.readTextFile(yml);
    await Deno.writeTextFile(yml, text.replace(/secrets: \[\]/, `secrets: [${secret}]`));
    assert.equal((await run(userCommand, args)).code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("init puts --name, and no listen or loopback IP of a public server, in the certificate", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await run(initCommand, [dir, "--listen", "10.1.2.3:443", "--name", "Nitro.Example"]);
    const cfg = await loadServerConfig(join(dir, "server.yml"));
    assert.deepEqual(cfg.listen, { host: "10.1.2.3", port: 443 });
    assert.deepEqual(certificateNames(cfg.tls!.certPem), {
      dnsNames: ["nitro.example"],
      ips: [],
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("init refuses a bad listen address, name or argument list", async () => {
  await assertRejectsWith(
    run(initCommand, ["/tmp/x", "--listen", "8443"]),
    UsageError,
    'Invalid listen address "8443": expected HOST:PORT, e.g. 127.0.0.1:',
  );
  await assertRejectsWith(
    run(initCommand, ["/tmp/x", "--name", "bad name"]),
    UsageError,
    'Invalid name "bad name": expected a DNS name such as nitro.example',
  );
  await assertRejectsWith(run(initCommand, []), UsageError, "missing DIR");
  await assertRejectsWith(run(initCommand, ["a", "b"]), UsageError, 'unexpected argument "b"');
});

async function withServer(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await run(initCommand, [dir, "--name", "nitro.example"]);
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

test("user add writes users.yml and a profile that loadClientConfig reads", async () => {
  await withServer(async (dir) => {
    const out = join(dir, "alice.yml");
    const r = await run(userCommand, [
      "add",
      "alice",
      "--dir",
      dir,
      "--out",
      out,
      "--routes",
      "tcp:*.example.com:443, 10.0.0.*:22",
      "--totp",
    ]);
    assert.equal(r.code, 0);
    const server = await loadServerConfig(join(dir, "server.yml"));
    const users = await loadUsers(server.usersFile);
    const alice = users.users.get("alice")!;
    assert.deepEqual(alice.routes, ["tcp:*.example.com:443", "10.0.0.*:22"]);
    const profile = await loadClientConfig(out);
    assert.equal(profile.user, "alice");
    assert.deepEqual(profile.server, { host: "nitro.example", port: 8443 });
    assert.equal(profile.serverName, "nitro.example");
    assert.deepEqual(profile.serverKey, serverPublicKey(decodeServerIdentity(server.identity)));
    assert.deepEqual(x25519.getPublicKey(profile.key), alice.publicKey);
    assert.deepEqual(profile.token, alice.token);
    assert.deepEqual(profile.totpSecret, alice.totpSecret);
    assert.equal(profile.caPem, await Deno.readTextFile(join(dir, "tls/ca.crt")));
    assert.equal(await mode(out), 0o600);
    assert.equal(await mode(server.usersFile), 0o600);
    const link = r.out.split("\n").find((l) => l.startsWith("nitrosocks://"))!;
    // The server sends its CA in its chain, so the link names it by hash: ≤ 400 characters.
    const shared = decodeShareLink(link);
    assert.deepEqual(shared.caSha256, certificateHashes(profile.caPem!)[0]);
    assert.ok(link.length <= 400, `${link.length} characters`);
    assert.equal(shareLinkProfile(shared, profile.caPem), await Deno.readTextFile(out));
    assert.ok(r.out.includes("--socks5-hostname 127.0.0.1:1080"));
    assert.ok(
      (await Deno.readTextFile(server.usersFile)).startsWith("# NitroSocks users."),
      "comments kept",
    );
  });
});

test("user add profile reaches the server over TLS with its CA and server name", async () => {
  await withServer(async (dir) => {
    const out = join(dir, "bob.yml");
    await run(userCommand, [
      "add",
      "bob",
      "--dir",
      dir,
      "--out",
      out,
      "--server",
      "127.0.0.1:8443",
    ]);
    const server = await loadServerConfig(join(dir, "server.yml"));
    const profile = await loadClientConfig(out);
    const listener = Deno.listenTls({
      hostname: "127.0.0.1",
      port: 0,
      cert: server.tls!.certPem,
      key: server.tls!.keyPem,
    });
    const served = serveConnections(listener, async (c) => {
      await c.handshake();
      await writeAll(c, new TextEncoder().encode("hello bob"));
    });
    try {
      const dial = async (serverName: string) => {
        const tcp = await Deno.connect({ hostname: profile.server.host, port: served.port });
        return Deno.startTls(tcp, { hostname: serverName, caCerts: [profile.caPem!] });
      };
      // The profile's CA and server name verify the server's certificate…
      const tls = await dial(profile.serverName);
      const got = await readToEnd(tls, { endOnError: true });
      tls.close();
      assert.equal(new TextDecoder().decode(got), "hello bob");
      // …and the check is real: another name is refused.
      const other = await dial("not-the-server.example");
      await assertRejectsWith(other.handshake(), Deno.errors.InvalidData, /not valid for name/);
      other.close();
    } finally {
      await served.close();
    }
  });
});

test("user add refuses a taken name, an existing profile and a bad route", async () => {
  await withServer(async (dir) => {
    const out = join(dir, "carol.yml");
    await run(userCommand, ["add", "carol", "--dir", dir, "--out", out]);
    const before = await Deno.readTextFile(join(dir, "users.yml"));
    await assert.rejects(
      run(userCommand, ["add", "carol", "--dir", dir, "--out", join(dir, "c2.yml")]),
      /User "carol" already exists/,
    );
    await assert.rejects(
      run(userCommand, ["add", "dave", "--dir", dir, "--out", out]),
      /Refusing to overwrite .*carol.yml/,
    );
    await assertRejectsWith(
      run(userCommand, ["add", "dave", "--dir", dir, "--routes", "::1:22"]),
      UsageError,
      'Invalid route "::1:22": IPv6 addresses go in brackets, e.g. "[::1]:22"',
    );
    await assertRejectsWith(
      run(userCommand, ["add", "bad/name", "--dir", dir]),
      UsageError,
      'Invalid user name "bad/name": expected 1-64 of A-Z a-z 0-9 . _ -',
    );
    await assertRejectsWith(
      run(userCommand, ["add", "dave", "--dir", dir, "--server", "nope"]),
      UsageError,
      'Invalid server address "nope": expected HOST:PORT, e.g. 127.0.0.1:',
    );
    assert.equal(await Deno.readTextFile(join(dir, "users.yml")), before, "users.yml untouched");
    await assertRejectsWith(
      Deno.stat(join(dir, "c2.yml")),
      Deno.errors.NotFound,
      "No such file or directory (os error 2): stat '",
    );
    await assertRejectsWith(
      Deno.stat(join(dir, "users.yml.lock")),
      Deno.errors.NotFound,
      "No such file or directory (os error 2): stat '",
    );
  });
});

test("user add names the address clients can reach: init's --name for a wildcard listen address, else what --server says", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await run(initCommand, [dir, "--listen", "0.0.0.0:8443", "--name", "vpn.example.org"]);
    const a = await run(userCommand, ["add", "alice", "--dir", dir, "--out", join(dir, "a.yml")]);
    assert.deepEqual((await loadClientConfig(join(dir, "a.yml"))).server, {
      host: "vpn.example.org",
      port: 8443,
    });
    assert.match(
      a.out,
      /^Clients dial vpn\.example\.org:8443 \(the certificate's name \(init --name\)/m,
    );
    const b = await run(userCommand, [
      "add",
      "bob",
      "--dir",
      dir,
      "--out",
      join(dir, "b.yml"),
      "--server",
      "203.0.113.7:443",
    ]);
    const bob = await loadClientConfig(join(dir, "b.yml"));
    assert.deepEqual(bob.server, { host: "203.0.113.7", port: 443 });
    assert.equal(bob.serverName, "vpn.example.org");
    assert.match(b.out, /^Clients dial 203\.0\.113\.7:443 \(--server\)\.$/m);
    // Only a certificate for localhost leaves loopback, and then the output says so.
    const local = await Deno.makeTempDir();
    try {
      await run(initCommand, [local, "--listen", "[::]:9443"]);
      const c = await run(userCommand, ["add", "c", "--dir", local, "--out", join(local, "c.yml")]);
      assert.deepEqual((await loadClientConfig(join(local, "c.yml"))).server, {
        host: "::1",
        port: 9443,
      });
      assert.match(c.out, /^Clients dial \[::1\]:9443 \(.*from this machine only; pass --server/m);
    } finally {
      await Deno.remove(local, { recursive: true });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("user add writes ./NAME.yml by default and honours --server", async () => {
  await withServer(async (dir) => {
    const cwd = Deno.cwd();
    Deno.chdir(dir);
    try {
      await run(userCommand, ["add", "erin", "--dir", ".", "--server", "[2001:db8::1]:443"]);
      const p = await loadClientConfig("erin.yml");
      assert.deepEqual(p.server, { host: "2001:db8::1", port: 443 });
      assert.equal(p.serverName, "nitro.example");
    } finally {
      Deno.chdir(cwd);
    }
  });
});

/** The QR code `terminalQr` drew (half blocks, light modules drawn) as an RGBA image. */
function qrImage(text: string): { height: number; width: number; data: Uint8Array } {
  const rows = text.split("\n").filter((l) => l.length > 0);
  const cols = Math.max(...rows.map((r) => [...r].length));
  const light: boolean[][] = [];
  for (const r of rows) {
    const cs = [...r.padEnd(cols, " ")];
    light.push(cs.map((c) => c === "█" || c === "▀"));
    light.push(cs.map((c) => c === "█" || c === "▄"));
  }
  const scale = 4, pad = 8;
  const w = cols * scale + 2 * pad * scale, h = light.length * scale + 2 * pad * scale;
  const data = new Uint8Array(w * h * 4).fill(255);
  light.forEach((row, y) =>
    row.forEach((isLight, x) => {
      if (isLight) return;
      for (let dy = 0; dy < scale; dy++) {
        for (let dx = 0; dx < scale; dx++) {
          const i = (((y + pad) * scale + dy) * w + (x + pad) * scale + dx) * 4;
          data[i] = data[i + 1] = data[i + 2] = 0;
        }
      }
    })
  );
  return { height: h, width: w, data };
}

test("a server whose chain lacks its CA gets long links and the advice that cert renew shortens them", async () => {
  await withServer(async (dir) => {
    // A directory from before the chain: server.crt holds the server's certificate alone.
    const crt = join(dir, "tls/server.crt");
    const chain = await Deno.readTextFile(crt);
    await Deno.writeTextFile(crt, chain.slice(0, chain.indexOf("-----END CERTIFICATE-----") + 26));
    const long = await run(userCommand, ["add", "old", "--dir", dir, "--out", join(dir, "o.yml")]);
    const longLink = /^nitrosocks:\/\/\S+$/m.exec(long.out)![0];
    assert.ok(longLink.length > 600, `${longLink.length}`);
    assert.equal(decodeShareLink(longLink).caSha256, undefined, "the CA travels whole");
    assert.match(long.out, /carries the CA whole, \d+ characters: .*nitrosocks cert renew --dir /);
    await run(certCommand, ["renew", "--dir", dir]);
    const short = await run(userCommand, ["add", "new", "--dir", dir, "--out", join(dir, "n.yml")]);
    const shortLink = /^nitrosocks:\/\/\S+$/m.exec(short.out)![0];
    assert.ok(shortLink.length <= 400, `${shortLink.length}`);
    assert.doesNotMatch(short.out, /carries the CA whole/);
  });
});

test("user add --qr prints a QR code that decodes back to the share link", async () => {
  await withServer(async (dir) => {
    const r = await run(userCommand, [
      "add",
      "qr",
      "--dir",
      dir,
      "--out",
      join(dir, "q.yml"),
      "--qr",
    ]);
    const lines = r.out.split("\n");
    const at = lines.findIndex((l) => l.startsWith("nitrosocks://"));
    const link = lines[at]!;
    const qr = lines.slice(at + 2).filter((l) => /^[█▀▄ ]+$/.test(l));
    assert.ok(qr.length > 20, "a QR code follows the link");
    assert.equal(decodeQR(qrImage(qr.join("\n"))), link);
    const plain = await run(userCommand, [
      "add",
      "noqr",
      "--dir",
      dir,
      "--out",
      join(dir, "n.yml"),
    ]);
    assert.ok(!plain.out.includes("▀"), "no QR code without --qr");
  });
});

test("user list and user remove", async () => {
  await withServer(async (dir) => {
    assert.match((await run(userCommand, ["list", "--dir", dir])).out, /^No users yet/);
    for (const n of ["ann", "ben"]) {
      await run(userCommand, [
        "add",
        n,
        "--dir",
        dir,
        "--out",
        join(dir, `${n}.yml`),
        "--routes",
        "*:443",
      ]);
    }
    const list = (await run(userCommand, ["list", "--dir", dir])).out.split("\n");
    assert.match(list[0]!, /^NAME\s+LOGIN\s+ROUTES\s+EXPIRES\s+STATUS\s+LIMITS$/);
    assert.match(list[1]!, /^ann\s+token\s+\*:443\s+never\s+active\s+-$/);
    assert.match(list[2]!, /^ben\s+/);
    assert.equal((await run(userCommand, ["remove", "ann", "--dir", dir])).code, 0);
    const users = await loadUsers(join(dir, "users.yml"));
    assert.deepEqual([...users.users.keys()], ["ben"]);
    assert.equal(await mode(join(dir, "users.yml")), 0o600);
    await assert.rejects(run(userCommand, ["remove", "ann", "--dir", dir]), /No user "ann"/);
    await assertRejectsWith(
      run(userCommand, ["frob", "--dir", dir]),
      UsageError,
      'unknown subcommand "frob": expected add, set, list, remove or token',
    );
    await assertRejectsWith(
      run(userCommand, ["list", "--dir", dir, "--totp"]),
      UsageError,
      '--totp is not an option of "user list"',
    );
  });
});

test("user add --url writes the way in as a URL; a bad URL or --url with --server is refused", async () => {
  await withServer(async (dir) => {
    const out = join(dir, "erin.yml");
    const r = await run(userCommand, [
      "add",
      "erin",
      "--dir",
      dir,
      "--out",
      out,
      "--url",
      "wss://cdn.example/assets/live",
    ]);
    assert.equal(r.code, 0);
    const text = await Deno.readTextFile(out);
    assert.match(text, /^server: "wss:\/\/cdn\.example:443\/assets\/live"$/m);
    const profile = await loadClientConfig(out);
    assert.equal(profile.transport, "wss");
    assert.equal(profile.path, "/assets/live");
    assert.deepEqual(profile.server, { host: "cdn.example", port: 443 });
    assert.equal(profile.serverName, "cdn.example");
    assert.equal(profile.caPem, await Deno.readTextFile(join(dir, "tls/ca.crt")));
    const before = await Deno.readTextFile(join(dir, "users.yml"));
    await assertRejectsWith(
      run(userCommand, ["add", "fred", "--dir", dir, "--url", "http://cdn.example/x"]),
      UsageError,
      'Invalid --url: unknown scheme "http://": expected tls://, tcp://, wss:// or ws://',
    );
    await assertRejectsWith(
      run(userCommand, [
        "add",
        "fred",
        "--dir",
        dir,
        "--url",
        "tls://a.example:443",
        "--server",
        "a.example:443",
      ]),
      UsageError,
      "--url and --server both name the way in: give one of them",
    );
    assert.equal(await Deno.readTextFile(join(dir, "users.yml")), before, "users.yml untouched");
  });
});

test("user list names each user's login: token, password with its iterations, jwt, and + totp", () => {
  const base = { publicKey: new Uint8Array(32), routes: ["*"], disabled: false };
  const k = new Uint8Array(32);
  const table = formatUserTable([
    { ...base, name: "tok", token: k },
    {
      ...base,
      name: "pw",
      password: { salt: new Uint8Array(16), iterations: 4096, storedKey: k, serverKey: k },
    },
    { ...base, name: "jw", jwt: { secret: k }, totpSecret: new Uint8Array(20) },
  ]).split("\n");
  assert.match(table[1]!, /^tok\s+token\s+\*/);
  assert.match(table[2]!, /^pw\s+password \(4096 iterations\)\s+\*/);
  assert.match(table[3]!, /^jw\s+jwt \+ totp\s+\*/);
});

test("cert renew replaces the certificate init made; init --cert/--key names the user's files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const srv = join(dir, "srv");
    await run(initCommand, [srv, "--listen", "127.0.0.1:8443", "--name", "nitro.example"]);
    const before = await Deno.readTextFile(join(srv, "tls", "server.crt"));
    const r = await run(certCommand, ["renew", "--dir", srv, "--days", "30"]);
    assert.equal(r.code, 0);
    assert.match(
      r.out,
      /^Renewed .*server\.crt for nitro\.example, 127\.0\.0\.1, ::1, valid until /,
    );
    assert.notEqual(await Deno.readTextFile(join(srv, "tls", "server.crt")), before);
    // The modes init gives them: the key private, the certificate chain not.
    assert.equal(await mode(join(srv, "tls", "server.key")), 0o600);
    assert.equal(await mode(join(srv, "tls", "server.crt")), 0o644);
    await assertRejectsWith(
      run(certCommand, ["renew", "--dir", srv, "--days", "900"]),
      UsageError,
      "Invalid --days 900",
    );
    await assertRejectsWith(
      run(certCommand, ["rotate"]),
      UsageError,
      'unknown sub-command "rotate"',
    );

    const own = join(dir, "own");
    await run(initCommand, [
      own,
      "--cert",
      join(srv, "tls", "server.crt"),
      "--key",
      join(srv, "tls", "server.key"),
    ]);
    const cfg = await loadServerConfig(join(own, "server.yml"));
    assert.deepEqual(cfg.tlsFiles, {
      cert: join(srv, "tls", "server.crt"),
      key: join(srv, "tls", "server.key"),
    });
    await assertRejectsWith(
      run(initCommand, [join(dir, "x"), "--cert", join(srv, "tls", "server.crt")]),
      UsageError,
      "--cert and --key go together",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("user add and user set write limits, keep comments and other users, and refuse bad values", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await run(initCommand, [dir, "--listen", "127.0.0.1:8443"]);
    const usersFile = join(dir, "users.yml");
    const add = (name: string, ...more: string[]) =>
      run(userCommand, ["add", name, "--dir", dir, "--out", join(dir, `${name}.yml`), ...more]);
    assert.equal((await add("bob")).code, 0);
    const r = await add(
      "alice",
      "--routes",
      "127.0.0.1:*",
      "--bandwidth",
      "10MB/s",
      "--quota",
      "50GB/30d",
      "--max-tunnels",
      "2",
      "--max-streams",
      "64",
      "--expires",
      "2030-01-01",
    );
    assert.equal(r.code, 0);
    let users = (await loadUsers(usersFile)).users;
    const a = users.get("alice")!;
    assert.deepEqual(
      [a.routes, a.bandwidth, a.quota, a.maxTunnels, a.maxStreams, a.expires?.toISOString()],
      [
        ["127.0.0.1:*"],
        10e6,
        { bytes: 50e9, periodS: 30 * 86_400 },
        2,
        64,
        "2030-01-01T00:00:00.000Z",
      ],
    );
    // A comment the operator wrote stays, and so does bob.
    const text = await Deno.readTextFile(usersFile);
    await Deno.writeTextFile(usersFile, `# our users, ask ops before editing\n${text}`);
    const bobBefore = users.get("bob")!;
    const set = await run(userCommand, [
      "set",
      "alice",
      "--dir",
      dir,
      "--disable",
      "--bandwidth",
      "512k/s",
      "--quota",
      "none",
      "--max-tunnels",
      "1",
      "--expires",
      "never",
    ]);
    assert.equal(set.code, 0);
    assert.match(set.out, /Changed user "alice"/);
    const after = await Deno.readTextFile(usersFile);
    assert.ok(after.startsWith("# our users, ask ops before editing\n"), after);
    users = (await loadUsers(usersFile)).users;
    const b = users.get("alice")!;
    assert.deepEqual(
      [b.disabled, b.bandwidth, b.quota, b.maxTunnels, b.maxStreams, b.expires],
      [true, 512_000, undefined, 1, 64, undefined],
    );
    assert.deepEqual(users.get("bob"), bobBefore, "bob is untouched");
    const listed = (await run(userCommand, ["list", "--dir", dir])).out.split("\n");
    assert.match(
      listed.find((l) => l.startsWith("alice"))!,
      /\bdisabled\s+bandwidth 512kB\/s, max_tunnels 1, max_streams 64$/,
    );
    assert.equal((await run(userCommand, ["set", "alice", "--dir", dir, "--enable"])).code, 0);
    assert.equal((await loadUsers(usersFile)).users.get("alice")!.disabled, false);

    const bad: [string[], RegExp][] = [
      [["set", "alice", "--dir", dir], /nothing to change/],
      [["set", "alice", "--dir", dir, "--bandwidth", "fast"], /Invalid --bandwidth "fast"/],
      [["set", "alice", "--dir", dir, "--quota", "50GB"], /Invalid --quota "50GB"/],
      [["set", "alice", "--dir", dir, "--max-tunnels", "0"], /Invalid --max-tunnels "0"/],
      [["set", "alice", "--dir", dir, "--expires", "soon"], /Invalid --expires "soon"/],
      [["set", "alice", "--dir", dir, "--disable", "--enable"], /choose one/],
      [["set", "alice", "--dir", dir, "--totp"], /--totp is not an option of "user set"/],
      [["add", "carol", "--dir", dir, "--quota", "none"], /are for "user set"/],
    ];
    for (const [args, re] of bad) {
      await assertRejectsWith(() => run(userCommand, args), UsageError, re);
    }
    await assert.rejects(
      () => run(userCommand, ["set", "nobody", "--dir", dir, "--disable"]),
      /No user "nobody"/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
