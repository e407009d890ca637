/**
 * `main.ts` as a long-running process under exactly the permissions the
 * compiled executables embed (`scripts/compile.ts`): its output collected
 * as it comes, waited on by pattern, signalled, and always killed by the
 * test's deadline.
 *
 * @module
 */
import { PERMISSION_FLAGS } from "../../scripts/compile.ts";
import { onTimeout, scaledMs, waitFor } from "./deadline.ts";
import { spawnWithDeadline } from "./process.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

/** A running `nitrosocks` process. */
export interface NitroProcess extends AsyncDisposable {
  readonly child: Deno.ChildProcess;
  /** Everything it wrote so far, stdout and stderr interleaved as read. */
  output(): string;
  /** Waits (bounded) until its output matches `pattern`; returns the match. */
  waitForOutput(pattern: RegExp, what: string, ms?: number): Promise<RegExpExecArray>;
  /** Sends a signal (no error if it already exited). */
  signal(sig: Deno.Signal): void;
  /** Resolves with its exit status. */
  readonly status: Promise<Deno.CommandStatus>;
  /** SIGTERM, then SIGKILL after 5 s; resolves once it exited and its output is read. */
  close(): Promise<void>;
}

/** Options for {@linkcode startNitrosocks}. */
export interface NitroProcessOptions {
  /** Written to its standard input, which is then closed (default: no input). */
  stdin?: string;
  /** Working directory; default the repository root (main.ts is found either way). */
  cwd?: string;
}

/**
 * Starts `deno run PERMISSION_FLAGS main.ts ...args`.
 *
 * @example
 * ```ts ignore
 * await using server = startNitrosocks(["server", "--config", cfg]);
 * await server.waitForOutput(/listening on/, "the server to listen");
 * ```
 */
export function startNitrosocks(args: string[], opts: NitroProcessOptions = {}): NitroProcess {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...PERMISSION_FLAGS, `${ROOT}main.ts`, ...args],
    cwd: opts.cwd ?? ROOT,
    env: { NO_COLOR: "1" },
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const kill = () => {
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
  };
  const forget = onTimeout(kill);
  let out = "";
  const collect = (s: ReadableStream<Uint8Array>) =>
    s.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (t) => void (out += t) }),
    ).catch(() => {});
  const read = Promise.all([collect(child.stdout), collect(child.stderr)]);
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    w.write(new TextEncoder().encode(opts.stdin)).then(() => w.close()).catch(() => {});
  }
  const status = child.status;
  let exited = false;
  status.then(() => (exited = true));
  const close = async () => {
    try {
      child.kill("SIGTERM");
    } catch {
      // already exited
    }
    const t = setTimeout(kill, scaledMs(5_000));
    await status;
    clearTimeout(t);
    await read;
    forget();
  };
  return {
    child,
    output: () => out,
    async waitForOutput(pattern, what, ms = 30_000) {
      let m: RegExpExecArray | null = null;
      await waitFor(what, () => {
        m = pattern.exec(out);
        if (m === null && exited) {
          throw new Error(`nitrosocks ${args[0]} exited before ${what}:\n${out}`);
        }
        return m !== null;
      }, ms);
      return m!;
    },
    signal(sig) {
      try {
        child.kill(sig);
      } catch {
        // already exited
      }
    },
    status,
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** What {@linkcode setUpServer} made. */
export interface ServerSetUp {
  /** The port server.yml listens on (127.0.0.1). */
  port: number;
  /** The server directory. */
  srv: string;
  /** alice's profile. */
  profile: string;
  /** What `user add` printed (the share link among it). */
  added: string;
}

/**
 * `nitrosocks init DIR/srv --listen 127.0.0.1:PORT --name vpn.example.org`
 * and `user add alice --out DIR/alice.yml ...addFlags` as processes.
 *
 * @example
 * ```ts ignore
 * const { srv, profile } = await setUpServer(dir, "--routes", "127.0.0.1:*");
 * ```
 */
export async function setUpServer(dir: string, ...addFlags: string[]): Promise<ServerSetUp> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  const srv = `${dir}/srv`;
  const profile = `${dir}/alice.yml`;
  let added = "";
  for (
    const args of [
      ["init", srv, "--listen", `127.0.0.1:${port}`, "--name", "vpn.example.org"],
      ["user", "add", "alice", "--dir", srv, "--out", profile, ...addFlags],
    ]
  ) {
    const p = startNitrosocks(args);
    const { code } = await p.status;
    await p.close();
    if (code !== 0) {
      throw new Error(`nitrosocks ${args.slice(0, 2).join(" ")} failed:\n${p.output()}`);
    }
    added = p.output();
  }
  return { port, srv, profile, added };
}

/** Waits (bounded) for a client process to say it is ready; resolves to its "127.0.0.1:PORT". */
export async function clientReady(client: NitroProcess): Promise<string> {
  const m = await client.waitForOutput(
    /SOCKS5 proxy ready on ([^\s]+:\d+)/,
    "nitrosocks client to be ready",
  );
  return m[1]!;
}

/**
 * `curl -sS --max-time S --socks5-hostname SOCKS URL` to completion (a
 * deadline of S + 10 s): exit code, body and errors.
 *
 * @example
 * ```ts ignore
 * const r = await socksCurl(await clientReady(client), `${target.url}/hello`);
 * ```
 */
export async function socksCurl(
  socks: string,
  url: string,
  maxS = 20,
): Promise<{ code: number; body: string; stderr: string }> {
  const out = await spawnWithDeadline("curl", {
    args: ["-sS", "--max-time", `${maxS}`, "--socks5-hostname", socks, url],
    stdout: "piped",
    stderr: "piped",
  }, (maxS + 10) * 1000).output;
  const dec = new TextDecoder();
  return { code: out.code, body: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}
