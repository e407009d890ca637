/**
 * README's "Install": the `deno install -g` line names exactly the
 * permissions the compiled executables embed, and run as written (into a
 * temporary root, with every proxy pointing nowhere) it installs a working
 * `nitrosocks` offline. The service files in examples/service/ are valid:
 * systemd units pass `systemd-analyze verify`, the launchd plist parses as a
 * property list, and each runs a command `nitrosocks` has.
 *
 * @module
 */
import { strict as assert } from "node:assert";
import { PERMISSION_FLAGS, UNSTABLE_FLAGS } from "../scripts/compile.ts";
import { hasProgram } from "./support/fronts.ts";
import { test } from "./support/deadline.ts";
import { spawnWithDeadline } from "./support/process.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const SERVICE = `${ROOT}examples/service/`;
/** Environment for "offline": every proxy variable names a closed port. */
const OFFLINE = {
  HTTPS_PROXY: "http://127.0.0.1:9",
  HTTP_PROXY: "http://127.0.0.1:9",
  https_proxy: "http://127.0.0.1:9",
  http_proxy: "http://127.0.0.1:9",
  DENO_NO_UPDATE_CHECK: "1",
};

async function runIt(cmd: string, args: string[], env: Record<string, string> = {}) {
  const out = await spawnWithDeadline(cmd, {
    args,
    cwd: ROOT,
    env,
    stdout: "piped",
    stderr: "piped",
  }, 120_000).output;
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

async function installLine(): Promise<string[]> {
  const readme = await Deno.readTextFile(`${ROOT}README.md`);
  const lines = readme.split("\n").filter((l) => l.startsWith("deno install -g "));
  assert.equal(lines.length, 1, "README has one deno install -g line");
  return lines[0]!.trim().split(/\s+/);
}

test("README's deno install -g line has exactly the permissions the executables embed", async () => {
  const words = await installLine();
  const flags = words.filter((w) => w.startsWith("--allow-") || w.startsWith("--unstable-"));
  assert.deepEqual(flags.sort(), [...PERMISSION_FLAGS, ...UNSTABLE_FLAGS].sort());
  assert.ok(!words.includes("-A") && !words.includes("--allow-all"));
  assert.equal(words.at(-1), "main.ts");
});

test.slow("README's deno install -g line installs a working nitrosocks offline", async () => {
  const root = await Deno.makeTempDir();
  try {
    const [deno, ...args] = await installLine();
    assert.equal(deno, "deno");
    // As written, plus where to install (not the user's ~/.deno).
    const r = await runIt(Deno.execPath(), [args[0]!, args[1]!, "--root", root, ...args.slice(2)], {
      ...OFFLINE,
      PATH: Deno.env.get("PATH") ?? "",
      HOME: Deno.env.get("HOME") ?? root,
      ...(Deno.env.get("DENO_DIR") === undefined ? {} : { DENO_DIR: Deno.env.get("DENO_DIR")! }),
    });
    assert.equal(r.code, 0, r.stderr);
    const v = await runIt(`${root}/bin/nitrosocks`, ["--version"], {
      ...OFFLINE,
      PATH: `${Deno.execPath().replace(/\/[^/]+$/, "")}:${Deno.env.get("PATH") ?? ""}`,
      HOME: Deno.env.get("HOME") ?? root,
    });
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.stdout.trim(), "nitrosocks 0.1.0");
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

test("the systemd units pass systemd-analyze verify and run nitrosocks server/client", async (t) => {
  if (!(await hasProgram("systemd-analyze"))) {
    await t.step({ name: "systemd-analyze not installed", ignore: true, fn: () => {} });
    return;
  }
  const dir = await Deno.makeTempDir();
  try {
    for (
      const [file, as, command] of [
        ["nitrosocks-server.service", "nitrosocks-server.service", "server --config "],
        ["nitrosocks-client@.service", "nitrosocks-client@alice.service", "client --config "],
      ] as const
    ) {
      const text = await Deno.readTextFile(`${SERVICE}${file}`);
      const exec = /^ExecStart=\/usr\/local\/bin\/nitrosocks (.*)$/m.exec(text);
      assert.ok(exec?.[1]?.startsWith(command), `${file} runs nitrosocks ${command}`);
      // verify checks that the program exists: point it at one that does.
      await Deno.writeTextFile(
        `${dir}/${as}`,
        text.replaceAll("/usr/local/bin/nitrosocks", Deno.execPath()),
      );
      const r = await runIt("systemd-analyze", ["verify", `${dir}/${as}`], {
        PATH: Deno.env.get("PATH") ?? "",
      });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr.trim(), "", `${file}: ${r.stderr}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

test("the launchd plist is a property list that runs nitrosocks client --config", async () => {
  const r = await runIt("python3", [
    "-c",
    "import json, plistlib, sys; print(json.dumps(plistlib.load(open(sys.argv[1], 'rb'))))",
    `${SERVICE}org.nitrosocks.client.plist`,
  ], { PATH: Deno.env.get("PATH") ?? "" });
  assert.equal(r.code, 0, r.stderr);
  const plist = JSON.parse(r.stdout) as { Label: string; ProgramArguments: string[] };
  assert.equal(plist.Label, "org.nitrosocks.client");
  assert.deepEqual(plist.ProgramArguments.slice(1, 3), ["client", "--config"]);
});

test("the Windows recipe uses commands nitrosocks has", async () => {
  const text = await Deno.readTextFile(`${SERVICE}windows.md`);
  for (const cmd of ["profile import --out", "client --config", "server --config", "init "]) {
    assert.ok(text.includes(cmd), cmd);
  }
  assert.match(text, /nitrosocks-x86_64-pc-windows-msvc\.exe/);
});
