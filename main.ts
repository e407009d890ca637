/**
 * NitroSocks: a secure SOCKS5 tunnel that stays private and authenticated
 * even when the TLS between client and server is intercepted.
 *
 * `main.ts` only dispatches subcommands into `lib/cli`.
 *
 * @module
 */
import { runCli } from "./lib/cli/mod.ts";

if (import.meta.main) {
  Deno.exit(await runCli(Deno.args));
}
