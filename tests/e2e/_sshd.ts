/**
 * A throwaway OpenSSH server on loopback for end-to-end tests, and the ssh
 * options that reach it through a NitroSocks SOCKS5 port.
 *
 * Exports:
 * - `canRunSshd()`: sshd is installed and we are root (it needs both).
 * - `startSshd()` → `Sshd`: sshd on 127.0.0.1 with fresh host and user keys
 *   (public key login as root only); `close()` stops it and removes its
 *   files, and resolves with its log.
 * - `SSH_OPTIONS`: ssh options with no config, no prompts, no known hosts;
 *   `sshVia(socksPort)`: those and `nc -X 5` through the SOCKS5 port as the
 *   ProxyCommand.
 *
 * @module
 */
import { join } from "node:path";
import { freePort, run } from "./_harness.ts";

const SSHD = "/usr/sbin/sshd";

/** True when sshd is installed and this process may run it (root). */
export async function canRunSshd(): Promise<boolean> {
  try {
    await Deno.stat(SSHD);
    return Deno.uid() === 0;
  } catch {
    return false;
  }
}

/** A running sshd. */
export interface Sshd {
  port: number;
  /** The private key that logs in as root. */
  identity: string;
  /** Stops sshd, removes its files; resolves with what it logged. */
  close(): Promise<string>;
}

/** Waits (bounded) until something accepts on 127.0.0.1:port. */
async function waitForPort(port: number, child: Deno.ChildProcess): Promise<boolean> {
  let exited = false;
  child.status.then(() => (exited = true));
  for (let i = 0; i < 100 && !exited; i++) {
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      c.close();
      return true;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return false;
}

/**
 * Starts sshd on a free loopback port with `extraConfig` lines added.
 *
 * @example
 * ```ts ignore
 * const sshd = await startSshd();
 * const r = await run("ssh", [...sshVia(pair.socksPort), "-i", sshd.identity, "-p", String(sshd.port), "root@127.0.0.1", "true"]);
 * const log = await sshd.close();
 * ```
 */
export async function startSshd(extraConfig: string[] = []): Promise<Sshd> {
  const tmp = await Deno.makeTempDir({ prefix: "nitrosocks-sshd-" });
  try {
    for (const name of ["host_key", "id"]) {
      const k = await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(tmp, name)]);
      if (k.code !== 0) throw new Error(`ssh-keygen failed: ${k.stderr}`);
    }
    await Deno.copyFile(join(tmp, "id.pub"), join(tmp, "authorized_keys"));
    // sshd refuses to start without its privilege separation directory.
    await Deno.mkdir("/run/sshd", { recursive: true, mode: 0o755 });
    const port = freePort();
    const config = join(tmp, "sshd_config");
    await Deno.writeTextFile(
      config,
      [
        `Port ${port}`,
        "ListenAddress 127.0.0.1",
        `HostKey ${join(tmp, "host_key")}`,
        `AuthorizedKeysFile ${join(tmp, "authorized_keys")}`,
        "PidFile none",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        "UseDNS no",
        "LogLevel VERBOSE",
        ...extraConfig,
        "",
      ].join("\n"),
    );
    const sshd = new Deno.Command(SSHD, {
      args: ["-D", "-e", "-f", config],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const log = new Response(sshd.stderr).text();
    let closed: Promise<string> | undefined;
    const close = () =>
      closed ??= (async () => {
        try {
          sshd.kill("SIGTERM");
        } catch {
          // already gone
        }
        await sshd.status;
        const text = await log.catch(() => "");
        await Deno.remove(tmp, { recursive: true });
        return text;
      })();
    if (!(await waitForPort(port, sshd))) {
      throw new Error(`sshd did not start: ${await close()}`);
    }
    return { port, identity: join(tmp, "id"), close };
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
}

/** ssh options: no config, no prompts, no known hosts. */
export const SSH_OPTIONS: readonly string[] = [
  "-F",
  "/dev/null",
  "-o",
  "BatchMode=yes",
  "-o",
  "StrictHostKeyChecking=no",
  "-o",
  "UserKnownHostsFile=/dev/null",
];

/** {@linkcode SSH_OPTIONS}, and `nc -X 5` through the SOCKS5 port. */
export function sshVia(socksPort: number): string[] {
  return [...SSH_OPTIONS, "-o", `ProxyCommand=nc -X 5 -x 127.0.0.1:${socksPort} %h %p`];
}
