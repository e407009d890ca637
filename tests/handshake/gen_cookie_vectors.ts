/**
 * Writes tests/vectors/cookie_v1.json (docs/PROTOCOL.md part 2 section 15)
 * from fixed inputs with the library's own functions;
 * tests/handshake/cookie_test.ts checks every value against an independent
 * computation straight from the spec text.
 *
 * Run: deno run --allow-read=tests/vectors --allow-write=tests/vectors tests/handshake/gen_cookie_vectors.ts
 *
 * @module
 */
import {
  CookieJar,
  cookieKeys,
  helloMac1,
  helloMac2,
  sealCookieReply,
} from "../../lib/handshake/cookie.ts";
import { hex } from "../crypto/_hex.ts";
import { drbg, fixture } from "./_helpers.ts";

const h = (b: Uint8Array) => hex(b);

/** The vector cases; also used by the test to recompute them. */
export function cookieCases(): Record<string, string>[] {
  const f = fixture("cookie vector keys");
  const out: Record<string, string>[] = [];
  for (const [i, source] of ["192.0.2.7", "2001:db8:1:2::/64"].entries()) {
    const r = drbg(`cookie vector ${i}`);
    const repr = r(32), maskedLen = r(2), ephemeralPrivate = r(32), nonce = r(24);
    const secret = r(32);
    const jar = new CookieJar(f.serverPublicKey, { random: () => secret, now: () => 0 });
    const keys = cookieKeys(f.serverPublicKey);
    const mac1 = helloMac1(keys.mac1, repr, maskedLen);
    const cookie = jar.cookieFor(source);
    out.push({
      server_public_key: h(f.serverPublicKey),
      source,
      cookie_secret: h(secret),
      repr: h(repr),
      masked_len: h(maskedLen),
      ephemeral_private: h(ephemeralPrivate),
      reply_nonce: h(nonce),
      mac1_key: h(keys.mac1),
      reply_key: h(keys.reply),
      mac1: h(mac1),
      mac2_without_cookie: h(helloMac2({ ephemeralPrivate }, repr, maskedLen, mac1)),
      cookie: h(cookie),
      mac2_with_cookie: h(helloMac2({ cookie }, repr, maskedLen, mac1)),
      cookie_reply: h(sealCookieReply(keys.reply, cookie, mac1, nonce)),
    });
  }
  return out;
}

if (import.meta.main) {
  const file = new URL("../vectors/cookie_v1.json", import.meta.url);
  const doc = {
    description: "NitroSocks cookies under load (docs/PROTOCOL.md part 2 section 15): mac1 and " +
      "reply keys from the server's public key, mac1 and mac2 over a Hello's representative and " +
      "masked length, the cookie of a source under a secret, the cookie reply. Hex; MAC = " +
      "HMAC-SHA256 truncated to 16 bytes.",
    regenerate:
      "deno run --allow-read=tests/vectors --allow-write=tests/vectors tests/handshake/gen_cookie_vectors.ts && deno fmt tests/vectors/cookie_v1.json",
    cases: cookieCases(),
  };
  await Deno.writeTextFile(file, JSON.stringify(doc, null, 2) + "\n");
  console.log(`wrote ${file.pathname}`);
}
