/**
 * Helpers for the path, relay, rotation and ticket tests (`paths_test.ts`,
 * `rotation_test.ts`, `tickets_test.ts`): a curl download to a file that
 * can be watched while it runs, bounded polling, a client started from an
 * edited copy of alice's profile (extra endpoints, other CAs), and
 * `nitrosocks relay` run as a real subprocess.
 *
 * Exports:
 * - `startCurl(socksPort, url, out, opts?)` → `CurlRun` (`done`, `kill()`)
 * - `sha256File(path)`, `fileSize(path)`
 * - `waitFor(what, cond, timeoutMs)` (from `support/deadline.ts`): polls, throws on timeout
 * - `startEditedClient(pair, edit, opts?)` → a client on an edited copy of
 *   the profile, with an `EventLog` of everything it reports (`recorded`)
 * - `startFailoverClient(pair, relayPort)` → a client with the relay, then the server, as endpoints
 * - `endpointYaml(port, opts?)`, `replaceCa(profile, caPem)`
 * - `startRelayProcess(args)` → `RelayProcess` (`port`, `stderr()`, `close()`)
 *
 * @module
 */
import { join } from "node:path";
import { loadClientConfig } from "../../lib/config/mod.ts";
import { EventHub, EventLog } from "../../lib/observe/mod.ts";
import { type ClientHandle, startClient } from "../../lib/tunnel/client.ts";
import { PERMISSION_FLAGS } from "../../scripts/compile.ts";
import { onTimeout, scaledMs, step } from "../support/deadline.ts";
import { spawnWithDeadline } from "../support/process.ts";
import { type Pair, run, text } from "./_harness.ts";

export { waitFor } from "../support/deadline.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

/** A curl download in progress. */
export interface CurlRun {
  /** Settles when curl exits; rejects with a `DeadlineError` if its deadline killed it. */
  done: Promise<{ code: number; stderr: string }>;
  kill(): void;
}

/**
 * Starts `curl` through the SOCKS5 port, writing the body to `out`.
 *
 * @example
 * ```ts ignore
 * const dl = startCurl(pair.socksPort, `${target.url}/bytes/${n}`, out, { limitRate: "16M" });
 * await waitFor("8 MiB", async () => (await fileSize(out)) >= 8 << 20, 10_000);
 * ```
 */
export function startCurl(
  socksPort: number,
  url: string,
  out: string,
  opts: { limitRate?: string; timeoutMs?: number } = {},
): CurlRun {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const p = spawnWithDeadline("curl", {
    args: [
      "-sS",
      "--fail",
      "--max-time",
      String(Math.ceil(timeoutMs / 1000)),
      "--socks5-hostname",
      `127.0.0.1:${socksPort}`,
      ...(opts.limitRate === undefined ? [] : ["--limit-rate", opts.limitRate]),
      "-o",
      out,
      url,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }, timeoutMs + 5_000);
  const done = p.output.then((o) => ({ code: o.code, stderr: new TextDecoder().decode(o.stderr) }));
  done.catch(() => {}); // a test that fails before awaiting it gets its own error
  return { done, kill: p.kill };
}

/** Hex SHA-256 of a file (sha256sum, so large files are not held in memory). */
export async function sha256File(path: string): Promise<string> {
  const r = await run("sha256sum", [path]);
  if (r.code !== 0) throw new Error(`sha256sum ${path} exited ${r.code}: ${r.stderr}`);
  return text(r).slice(0, 64);
}

/** Size of a file, 0 while it does not exist. */
export async function fileSize(path: string): Promise<number> {
  try {
    return (await Deno.stat(path)).size;
  } catch {
    return 0;
  }
}

/** Options for {@linkcode endpointYaml}. */
export interface EndpointYamlOptions {
  /** The endpoint's own `ca:`. */
  caPem?: string;
  /** Its `server_name:`; default "localhost", `null` for none. */
  serverName?: string | null;
  /** Its `transport:`, if any. */
  transport?: string;
}

/** The YAML of one `endpoints:` list item at 127.0.0.1:`port`. */
export function endpointYaml(port: number, opts: EndpointYamlOptions = {}): string {
  const { caPem, serverName = "localhost", transport } = opts;
  const lines = [`  - server: "127.0.0.1:${port}"`];
  if (serverName !== null) lines.push(`    server_name: ${JSON.stringify(serverName)}`);
  if (transport !== undefined) lines.push(`    transport: ${transport}`);
  if (caPem !== undefined) {
    lines.push("    ca: |", ...caPem.trim().split(/\r?\n/).map((l) => `      ${l}`));
  }
  return lines.join("\n");
}

/** Replaces the profile's top-level `ca:` block with `caPem`. */
export function replaceCa(profile: string, caPem: string): string {
  const block = ["ca: |", ...caPem.trim().split(/\r?\n/).map((l) => `  ${l}`)].join("\n");
  const out = profile.replace(/^ca: \|\n(?: {2}.*\n?)+/m, `${block}\n`);
  if (out === profile) throw new Error("the profile has no ca block");
  return out;
}

/**
 * Starts a client (logging into `pair.logs` as "client") on a copy of
 * alice's profile rewritten by `edit`; SOCKS5 on 127.0.0.1:0, or where the
 * profile's `socks5.listen` says with `ownSocks`. Nothing but the profile
 * says where the server is. `recorded` holds every event the client
 * reported since it started. Close it before the pair.
 */
export async function startEditedClient(
  pair: Pair,
  edit: (profile: string) => string,
  opts: { ownSocks?: boolean } = {},
): Promise<ClientHandle & { recorded: EventLog }> {
  const path = join(pair.dir, `alice-edited-${crypto.randomUUID()}.yml`);
  await Deno.writeTextFile(path, edit(await Deno.readTextFile(pair.profilePath)), { mode: 0o600 });
  const events = new EventHub();
  const recorded = new EventLog(events);
  const client = await startClient({
    profile: await loadClientConfig(path),
    log: pair.logs.logger("client"),
    events,
    ...(opts.ownSocks ? {} : { socks: { host: "127.0.0.1", port: 0 } }),
  });
  return Object.assign(client, { recorded });
}

/**
 * Starts a client whose first endpoint is `relayPort` (a relay in front of
 * the server) and whose second is the server itself. Close it before the pair.
 */
export function startFailoverClient(
  pair: Pair,
  relayPort: number,
): ReturnType<typeof startEditedClient> {
  return startEditedClient(
    pair,
    (p) =>
      p.replace(/^server: .*$/m, `server: "127.0.0.1:${relayPort}"`) +
      `\nendpoints:\n${endpointYaml(pair.serverPort)}\n`,
  );
}

/** `nitrosocks relay` running as a subprocess. */
export interface RelayProcess {
  port: number;
  /** What the relay logged so far. */
  stderr(): string;
  /** SIGTERM, then SIGKILL after 5 s; resolves with the exit code. */
  close(): Promise<number>;
}

/**
 * Runs `deno run PERMISSION_FLAGS main.ts relay ARGS` (exactly the shipped
 * permissions) and waits for "relay ready on HOST:PORT".
 */
export async function startRelayProcess(args: string[]): Promise<RelayProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--quiet", ...PERMISSION_FLAGS, "main.ts", "relay", ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let err = "";
  const errDone = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({
      write(s) {
        if (err.length < 1_000_000) err += s;
      },
    }),
  ).catch(() => {});
  const kill = (sig: Deno.Signal) => {
    try {
      child.kill(sig);
    } catch {
      // already exited
    }
  };
  let out = "";
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const forget = onTimeout(() => kill("SIGKILL"));
  const deadline = setTimeout(() => kill("SIGKILL"), scaledMs(30_000));
  let port: number | undefined;
  try {
    await step("nitrosocks relay to say it is ready", async () => {
      while (port === undefined) {
        const { value, done } = await reader.read();
        if (done) break;
        out += value;
        const m = /relay ready on [^\s]+:(\d+)/.exec(out);
        if (m !== null) port = Number(m[1]);
      }
    });
  } finally {
    clearTimeout(deadline);
  }
  // Keep draining stdout so the relay never blocks on it.
  const outDone = (async () => {
    try {
      for (;;) if ((await reader.read()).done) break;
    } catch {
      // closed
    }
  })();
  if (port === undefined) {
    forget();
    kill("SIGKILL");
    await child.status;
    await Promise.all([errDone, outDone]);
    throw new Error(`relay did not start:\nstdout: ${out}\nstderr: ${err}`);
  }
  let closed: Promise<number> | undefined;
  return {
    port,
    stderr: () => err,
    close() {
      closed ??= (async () => {
        forget();
        kill("SIGTERM");
        const force = setTimeout(() => kill("SIGKILL"), 5_000);
        const { code } = await child.status;
        clearTimeout(force);
        await Promise.all([errDone, outDone]);
        return code;
      })();
      return closed;
    },
  };
}
