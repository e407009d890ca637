/**
 * Run by tests/openssl/load_test.ts in a child process under chosen
 * permissions: prints, as JSON, what `auto` resolves to, what the
 * process-wide default is and what `openssl` says.
 *
 * @module
 */
import { loadCryptoBackend } from "../../lib/openssl/mod.ts";
import { cryptoBackend, describeCryptoBackend } from "../../lib/record/mod.ts";

const out: Record<string, string> = {};
out.auto = describeCryptoBackend(loadCryptoBackend("auto"));
out.default = cryptoBackend().name;
try {
  out.openssl = describeCryptoBackend(loadCryptoBackend("openssl"));
} catch (e) {
  out.openssl = `error: ${e instanceof Error ? e.message : String(e)}`;
}
console.log(JSON.stringify(out));
