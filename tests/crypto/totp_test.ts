import { strict as assert } from "node:assert";
import { hotp, type OtpAlgorithm, totp, verifyTotp } from "../../lib/crypto/totp.ts";
import { loadVector } from "./_hex.ts";
import { assertThrowsWith } from "../support/assert.ts";

interface TotpVectors {
  secrets: Record<OtpAlgorithm, string>;
  totp: ({ time: number } & Record<OtpAlgorithm, string>)[];
  hotp: string[];
}
const v = loadVector<TotpVectors>("rfc6238_totp.json");
const enc = new TextEncoder();

Deno.test("totp() matches RFC 6238 appendix B (SHA-1 rows)", () => {
  for (const row of v.totp) {
    assert.equal(
      totp(enc.encode(v.secrets.sha1), row.time * 1000, { digits: 8 }),
      row.sha1,
      `T=${row.time}`,
    );
  }
});

Deno.test("totp() matches RFC 6238 appendix B (SHA-256 and SHA-512 rows)", () => {
  for (const row of v.totp) {
    for (const algorithm of ["sha256", "sha512"] as const) {
      const got = totp(enc.encode(v.secrets[algorithm]), row.time * 1000, { digits: 8, algorithm });
      assert.equal(got, row[algorithm], `${algorithm} T=${row.time}`);
    }
  }
});

Deno.test("hotp() matches RFC 4226 appendix D", () => {
  v.hotp.forEach((code, i) => assert.equal(hotp(enc.encode(v.secrets.sha1), i), code));
});

Deno.test("verifyTotp() accepts the current step and one either side, nothing further", () => {
  const secret = enc.encode(v.secrets.sha1);
  const t = 1_111_111_111_000;
  const code = totp(secret, t);
  assert.equal(code.length, 6);
  assert.ok(verifyTotp(secret, code, t));
  assert.ok(verifyTotp(secret, code, t + 30_000));
  assert.ok(verifyTotp(secret, code, t - 30_000));
  assert.equal(verifyTotp(secret, code, t + 60_000), false);
  assert.equal(verifyTotp(secret, code, t - 60_000), false);
});

Deno.test("verifyTotp() refuses wrong, short, long and empty codes", () => {
  const secret = enc.encode(v.secrets.sha1);
  const t = 59_000;
  const code = totp(secret, t);
  const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, "0");
  assert.equal(verifyTotp(secret, wrong, t), false);
  assert.equal(verifyTotp(secret, code.slice(1), t), false);
  assert.equal(verifyTotp(secret, code + "0", t), false);
  assert.equal(verifyTotp(secret, "", t), false);
});

Deno.test("hotp() and totp() refuse bad options", () => {
  assertThrowsWith(
    () => hotp(new Uint8Array(20), 0, { digits: 5 }),
    RangeError,
    "Cannot compute HOTP: digits 5 is not between 6 and 10",
  );
  assertThrowsWith(
    () => hotp(new Uint8Array(20), -1),
    RangeError,
    "Cannot compute HOTP: counter -1 is outside 0..2^64-1",
  );
  assertThrowsWith(
    () => totp(new Uint8Array(20), -1_000),
    RangeError,
    "Cannot compute TOTP: time -1000 ms is before the epoch",
  );
  assertThrowsWith(
    () => totp(new Uint8Array(20), 0, { periodSeconds: 0 }),
    RangeError,
    "Cannot compute TOTP: period 0 is not positive",
  );
});
