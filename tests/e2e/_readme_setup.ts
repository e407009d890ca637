/**
 * Run by readme_setup_test.ts inside a network and mount namespace of its
 * own (`unshare -n -m -p`): `vpn.example.org` → 127.0.0.1 and `example.com`
 * → 198.51.100.7 through a hosts file mounted over /etc/hosts. Nothing leaves the
 * machine, and the commands of README's "Real set-up" run exactly as written
 * (`sh -c LINE`): the server's in a copy of the repository ("the server"),
 * from `profile import` on in another copy ("the laptop"), the link pasted
 * on standard input; curl reaches an HTTPS example.com served from a third
 * namespace behind a veth pair (its CA given through CURL_CA_BUNDLE). Each copy is a git repository with the
 * project's .gitignore, and `git status` must show nothing the commands
 * made. Prints one JSON line with what happened.
 *
 * Usage: deno run -A _readme_setup.ts WORKDIR
 *
 * @module
 */
import { createTlsFixture } from "../support/certs.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** The shell commands of README's "Real set-up", one string per command, by code block. */
export function realSetUpBlocks(readme: string): string[][] {
  const start = readme.indexOf("\n## Real set-up\n");
  const end = readme.indexOf("\n## ", start + 1);
  const section = readme.slice(start, end);
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) =>
    m[1]!.replace(/\\\n\s*/g, "").split("\n").map((l) => l.trim()).filter((l) => l !== "")
  );
}

async function sh(cmd: string[], cwd: string, input?: string) {
  const p = new Deno.Command(cmd[0]!, {
    args: cmd.slice(1),
    cwd,
    stdin: input === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (input !== undefined) {
    const w = p.stdin.getWriter();
    await w.write(new TextEncoder().encode(input));
    await w.close();
  }
  const out = await p.output();
  const dec = new TextDecoder();
  const stdout = dec.decode(out.stdout);
  return { code: out.code, stdout, out: stdout + dec.decode(out.stderr) };
}

/** A command left running, its output collected. */
function background(line: string, cwd: string) {
  // A process group of its own (setsid), so stopping it stops `deno task`'s child too.
  const p = new Deno.Command("setsid", {
    args: ["sh", "-c", `exec ${line}`],
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  const collect = (s: ReadableStream<Uint8Array>) =>
    s.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (t) => void (out += t) }),
    ).catch(() => {});
  const read = Promise.all([collect(p.stdout), collect(p.stderr)]);
  return {
    pid: p.pid,
    output: () => out,
    async until(pattern: RegExp, ms = 60_000) {
      const end = Date.now() + ms;
      while (!pattern.test(out)) {
        if (Date.now() > end) throw new Error(`no ${pattern} from "${line}":\n${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async stop() {
      // `deno task` runs deno as a child: signal the whole group.
      const group = (sig: Deno.Signal) => {
        try {
          Deno.kill(-p.pid, sig);
        } catch {
          // already exited
        }
      };
      group("SIGTERM");
      const t = setTimeout(() => group("SIGKILL"), 5_000);
      await p.status;
      clearTimeout(t);
      await read;
    },
  };
}

/** A copy of the repository's files that `deno task nitrosocks` needs, as a git repository. */
async function checkout(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const f of ["deno.json", "deno.lock", ".gitignore", "main.ts", "mod.ts", "lib"]) {
    const r = await sh(["cp", "-r", `${ROOT}${f}`, `${dir}/`], ROOT);
    if (r.code !== 0) throw new Error(r.out);
  }
  for (
    const cmd of [
      ["git", "init", "-q"],
      ["git", "add", "-A"],
      ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "copy"],
    ]
  ) {
    const r = await sh(cmd, dir);
    if (r.code !== 0) throw new Error(`${cmd.join(" ")}: ${r.out}`);
  }
}

async function main(work: string): Promise<void> {
  const result: Record<string, unknown> = {};
  const server = `${work}/server`;
  const laptop = `${work}/laptop`;
  await checkout(server);
  await checkout(laptop);

  // example.com, served over HTTPS from a network namespace of its own behind a veth pair
  // (an address of the server's own would be refused: egress.block "self"), with a CA curl
  // is told about.
  const { ca, server: cert } = await createTlsFixture(["example.com"]);
  await Deno.writeTextFile(`${work}/ca.pem`, ca.certPem);
  await Deno.writeTextFile(`${work}/web.crt`, cert.chainPem);
  await Deno.writeTextFile(`${work}/web.key`, cert.keyPem);
  const web = background(
    `unshare -n sh -c 'while ! ip link show v1 >/dev/null 2>&1; do sleep 0.05; done; ` +
      `ip link set lo up && ip addr add 198.51.100.7/24 dev v1 && ip link set v1 up && ` +
      `exec "$0" run -A "$1" --web "$2"' ${Deno.execPath()} ${
        new URL(import.meta.url).pathname
      } ${work}`,
    work,
  );
  const running: ReturnType<typeof background>[] = [web];
  try {
    // The veth's far end goes into the web server's namespace: setsid, sh and unshare exec
    // one another, so the process we spawned is the one in that namespace, once unshare ran
    // (before that, `netns PID` would put v1 in this namespace, where the loop never sees it).
    const webPid = `${web.pid}`;
    const ours = await Deno.readLink("/proc/self/ns/net");
    for (const end = Date.now() + 30_000;;) {
      if (await Deno.readLink(`/proc/${webPid}/ns/net`).catch(() => ours) !== ours) break;
      if (Date.now() > end) throw new Error(`the web server's unshare -n did not run in 30 s`);
      await new Promise((r) => setTimeout(r, 20));
    }
    for (
      const cmd of [
        ["ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", webPid],
        ["ip", "addr", "add", "198.51.100.1/24", "dev", "v0"],
        ["ip", "link", "set", "v0", "up"],
      ]
    ) {
      const r = await sh(cmd, work);
      if (r.code !== 0) throw new Error(`${cmd.join(" ")}: ${r.out}`);
    }
    await web.until(/web ready/);

    const blocks = realSetUpBlocks(await Deno.readTextFile(`${ROOT}README.md`));
    result.commands = blocks.flat();
    let link = "";
    let cwd = server;
    for (const line of blocks.flat()) {
      if (/profile import/.test(line)) cwd = laptop;
      if (/nitrosocks (server|client) /.test(line)) {
        const p = background(line, cwd);
        running.push(p);
        await p.until(/server/.test(line) ? /listening on/ : /SOCKS5 proxy ready/);
        continue;
      }
      const env = /^curl /.test(line) ? `CURL_CA_BUNDLE=${work}/ca.pem ` : "";
      const r = await sh(
        ["sh", "-c", env + line],
        cwd,
        /profile import/.test(line) ? `${link}\n` : undefined,
      );
      if (r.code !== 0) throw new Error(`"${line}" exited ${r.code}:\n${r.out}`);
      if (/user add alice/.test(line)) {
        link = /^(nitrosocks:\/\/\S+)$/m.exec(r.out)?.[1] ?? "";
        result.clientsDial = /^Clients dial (\S+) /m.exec(r.out)?.[1];
      }
      if (/^curl /.test(line)) result.curl = r.stdout;
    }
    result.linkLength = link.length;
    result.profileMode = ((await Deno.stat(`${laptop}/alice.yml`)).mode ?? 0) & 0o777;
    result.untracked = {
      server: (await sh(["git", "status", "--porcelain", "--untracked-files=all"], server)).out,
      laptop: (await sh(["git", "status", "--porcelain", "--untracked-files=all"], laptop)).out,
    };
    result.ok = true;
  } catch (e) {
    result.error = e instanceof Error ? e.message : String(e);
    result.logs = running.map((p) => p.output());
  } finally {
    for (const p of running.reverse()) await p.stop();
  }
  console.log(JSON.stringify(result));
}

/** `--web WORKDIR`: the HTTPS example.com, in its own namespace (see `main`). */
async function serveWeb(work: string): Promise<void> {
  const web = Deno.listenTls({
    hostname: "198.51.100.7",
    port: 443,
    cert: await Deno.readTextFile(`${work}/web.crt`),
    key: await Deno.readTextFile(`${work}/web.key`),
  });
  console.log("web ready");
  for await (const c of web) {
    (async () => {
      await c.read(new Uint8Array(4096));
      await c.write(new TextEncoder().encode(
        "HTTP/1.1 200 OK\r\nContent-Length: 24\r\nConnection: close\r\n\r\nhello from example.com!\n",
      ));
      c.close();
    })().catch(() => {});
  }
}

if (import.meta.main) {
  const [first, second] = Deno.args;
  if (first === "--web" && second !== undefined) await serveWeb(second);
  else if (first !== undefined) await main(first);
  else throw new Error("usage: _readme_setup.ts WORKDIR");
}
