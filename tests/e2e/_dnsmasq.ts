/**
 * A real dnsmasq on a loopback port for the end-to-end tests, answering
 * only the names it is given and never forwarding a query anywhere.
 *
 * Exports: `startDnsmasq(records)` → `Dnsmasq` (`port`; disposing stops it).
 *
 * @module
 */
import { spawnWithDeadline, waitListening } from "../support/process.ts";
import { DNSMASQ } from "../support/programs.ts";
import { freePort } from "./_harness.ts";

/** A running dnsmasq. */
export interface Dnsmasq extends AsyncDisposable {
  /** Its port on 127.0.0.1, UDP and TCP. */
  port: number;
}

/**
 * Starts dnsmasq on 127.0.0.1 answering `records` (name → addresses, each
 * name also answering for its subdomains) and nothing else.
 *
 * @example
 * ```ts ignore
 * await using dns = await startDnsmasq({ "example.test": ["10.1.2.3"] });
 * ```
 */
export async function startDnsmasq(records: Record<string, string[]>): Promise<Dnsmasq> {
  const port = freePort();
  const args = [
    "--keep-in-foreground",
    `--port=${port}`,
    "--listen-address=127.0.0.1",
    "--bind-interfaces",
    "--no-resolv",
    "--no-hosts",
    "--no-poll",
    "--conf-file=/dev/null",
    "--pid-file=",
    `--user=${Deno.env.get("USER") ?? "root"}`,
    "--log-facility=-",
  ];
  for (const [name, addrs] of Object.entries(records)) {
    for (const a of addrs) args.push(`--address=/${name}/${a}`);
  }
  const p = spawnWithDeadline(DNSMASQ, { args, stdout: "null", stderr: "piped" }, 120_000);
  // dnsmasq serves DNS over TCP on the same port: a refused connect fails at once, where a
  // UDP query to a port nobody has bound yet would wait for the resolver's timeout.
  try {
    await waitListening("127.0.0.1", port, "dnsmasq", 10_000);
  } catch (e) {
    p.kill();
    await p.output.catch(() => {});
    throw e;
  }
  return {
    port,
    async [Symbol.asyncDispose]() {
      p.kill();
      await p.output.catch(() => {});
    },
  };
}
