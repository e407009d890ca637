/**
 * Published AEAD vectors through the wrapper the record layer uses
 * (`lib/record/_aead.ts`): NIST GCM spec test cases, Wycheproof
 * aes_gcm_test.json (every invalid vector must throw), RFC 8439 section 2.8.2.
 */
import assert from "node:assert/strict";
import { aeadOpen, aeadSeal } from "../../lib/record/_aead.ts";
import { ProtocolError } from "../../lib/errors.ts";
import type { AeadId } from "../../lib/record/mod.ts";
import { hex, unhex } from "./_reference.ts";
import { assertRejectsWith } from "../support/assert.ts";

interface Vector {
  name: string;
  aead: AeadId;
  key: string;
  iv: string;
  aad: string;
  msg: string;
  ct: string;
  tag: string;
  valid: boolean;
}

const P64 = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72" +
  "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
const C3 = "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e" +
  "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985";
const C15 = "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa" +
  "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad";
const K = "feffe9928665731c6d6a8f9467308308";
const IV = "cafebabefacedbaddecaf888";
const AAD = "feedfacedeadbeeffeedfacedeadbeefabaddad2";

// McGrew & Viega, "The Galois/Counter Mode of Operation", appendix B (96-bit IV cases).
const NIST: Vector[] = [
  {
    name: "GCM TC1",
    aead: "aes-128-gcm",
    key: "00".repeat(16),
    iv: "00".repeat(12),
    aad: "",
    msg: "",
    ct: "",
    tag: "58e2fccefa7e3061367f1d57a4e7455a",
    valid: true,
  },
  {
    name: "GCM TC2",
    aead: "aes-128-gcm",
    key: "00".repeat(16),
    iv: "00".repeat(12),
    aad: "",
    msg: "00".repeat(16),
    ct: "0388dace60b6a392f328c2b971b2fe78",
    tag: "ab6e47d42cec13bdf53a67b21257bddf",
    valid: true,
  },
  {
    name: "GCM TC3",
    aead: "aes-128-gcm",
    key: K,
    iv: IV,
    aad: "",
    msg: P64,
    ct: C3,
    tag: "4d5c2af327cd64a62cf35abd2ba6fab4",
    valid: true,
  },
  {
    name: "GCM TC4",
    aead: "aes-128-gcm",
    key: K,
    iv: IV,
    aad: AAD,
    msg: P64.slice(0, 120),
    ct: C3.slice(0, 120),
    tag: "5bc94fbc3221a5db94fae95ae7121a47",
    valid: true,
  },
  {
    name: "GCM TC13",
    aead: "aes-256-gcm",
    key: "00".repeat(32),
    iv: "00".repeat(12),
    aad: "",
    msg: "",
    ct: "",
    tag: "530f8afbc74536b9a963b4f1c4cb738b",
    valid: true,
  },
  {
    name: "GCM TC14",
    aead: "aes-256-gcm",
    key: "00".repeat(32),
    iv: "00".repeat(12),
    aad: "",
    msg: "00".repeat(16),
    ct: "cea7403d4d606b6e074ec5d3baf39d18",
    tag: "d0d1c8a799996bf0265b98b5d48ab919",
    valid: true,
  },
  {
    name: "GCM TC15",
    aead: "aes-256-gcm",
    key: K + K,
    iv: IV,
    aad: "",
    msg: P64,
    ct: C15,
    tag: "b094dac5d93471bdec1a502270e3cc6c",
    valid: true,
  },
  {
    name: "GCM TC16",
    aead: "aes-256-gcm",
    key: K + K,
    iv: IV,
    aad: AAD,
    msg: P64.slice(0, 120),
    ct: C15.slice(0, 120),
    tag: "76fc6ece0f4e1768cddf8853bb2d551b",
    valid: true,
  },
];

// Wycheproof testvectors/aes_gcm_test.json (C2SP/wycheproof), 96-bit IV, 128-bit tag.
const W_KEY = "000102030405060708090a0b0c0d0e0f";
const W_IV = "505152535455565758595a5b";
const W_MSG = "202122232425262728292a2b2c2d2e2f";
const W_CT = "eb156d081ed6b6b55f4612f021d87b39";
const WYCHEPROOF: Vector[] = [
  {
    name: "Wycheproof tc1",
    aead: "aes-128-gcm",
    key: "5b9604fe14eadba931b0ccf34843dab9",
    iv: "028318abc1824029138141a2",
    aad: "",
    msg: "001d0c231287c1182784554ca3a21908",
    ct: "26073cc1d851beff176384dc9896d5ff",
    tag: "0a3ea7a5487cb5f7d70fb6c58d038554",
    valid: true,
  },
  {
    name: "Wycheproof tc2",
    aead: "aes-128-gcm",
    key: "5b9604fe14eadba931b0ccf34843dab9",
    iv: "921d2507fa8007b7bd067d34",
    aad: "00112233445566778899aabbccddeeff",
    msg: "001d0c231287c1182784554ca3a21908",
    ct: "49d8b9783e911913d87094d1f63cc765",
    tag: "1e348ba07cca2cf04c618cb4d43a5b92",
    valid: true,
  },
  {
    name: "Wycheproof tc5",
    aead: "aes-128-gcm",
    key: "384ea416ac3c2f51a76e7d8226346d4e",
    iv: "b30c084727ad1c592ac21d12",
    aad: "",
    msg: "35",
    ct: "54",
    tag: "7c1e4ae88bb27e5638343cb9fd3f6337",
    valid: true,
  },
  {
    name: "Wycheproof tc21 (tag ff..ff)",
    aead: "aes-128-gcm",
    key: "00112233445566778899aabbccddeeff",
    iv: "00".repeat(12),
    aad: "",
    msg: "ebd4a3e10cf6d41c50aeae007563b072",
    ct: "f62d84d649e56bc8cfedc5d74a51e2f7",
    tag: "ff".repeat(16),
    valid: true,
  },
  {
    name: "Wycheproof tc22 (tag 00..00)",
    aead: "aes-128-gcm",
    key: "00112233445566778899aabbccddeeff",
    iv: "ff".repeat(12),
    aad: "",
    msg: "d593c4d8224f1b100c35e4f6c4006543",
    ct: "431f31e6840931fd95f94bf88296ff69",
    tag: "00".repeat(16),
    valid: true,
  },
  ...[
    ["tc23 flipped bit 0 in tag", "d9847dbc326a06e988c77ad3863e6083"],
    ["tc24 flipped bit 1 in tag", "da847dbc326a06e988c77ad3863e6083"],
    ["tc25 flipped bit 7 in tag", "58847dbc326a06e988c77ad3863e6083"],
    ["tc26 flipped bit 8 in tag", "d8857dbc326a06e988c77ad3863e6083"],
    ["tc27 flipped bit 31 in tag", "d8847d3c326a06e988c77ad3863e6083"],
    ["tc28 flipped bit 32 in tag", "d8847dbc336a06e988c77ad3863e6083"],
    ["tc29 flipped bit 33 in tag", "d8847dbc306a06e988c77ad3863e6083"],
  ].map(([name, tag]): Vector => ({
    name: `Wycheproof ${name}`,
    aead: "aes-128-gcm",
    key: W_KEY,
    iv: W_IV,
    aad: "",
    msg: W_MSG,
    ct: W_CT,
    tag: tag!,
    valid: false,
  })),
];

// RFC 8439 section 2.8.2.
const RFC8439: Vector = {
  name: "RFC 8439 2.8.2",
  aead: "chacha20-poly1305",
  key: "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f",
  iv: "070000004041424344454647",
  aad: "50515253c0c1c2c3c4c5c6c7",
  msg: hex(new TextEncoder().encode(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
  )),
  ct: "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6" +
    "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36" +
    "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc" +
    "3ff4def08e4b7a9de576d26586cec64b6116",
  tag: "1ae10b594f09e26a7e902ecbd0600691",
  valid: true,
};

for (const v of [...NIST, ...WYCHEPROOF, RFC8439]) {
  Deno.test(`aeadSeal()/aeadOpen() ${v.valid ? "match" : "refuse"} ${v.name}`, async () => {
    const key = unhex(v.key), iv = unhex(v.iv), aad = unhex(v.aad), msg = unhex(v.msg);
    const sealed = unhex(v.ct + v.tag);
    if (v.valid) {
      assert.equal(hex(await aeadSeal(v.aead, key, iv, aad, msg)), v.ct + v.tag);
      assert.equal(hex(await aeadOpen(v.aead, key, iv, aad, sealed)), v.msg);
    } else {
      await assert.rejects(aeadOpen(v.aead, key, iv, aad, sealed), (e: unknown) => {
        assert.ok(e instanceof ProtocolError);
        assert.equal(e.code, "DECRYPT_FAILED");
        return true;
      });
    }
  });
}

for (const v of [NIST[3]!, NIST[7]!, RFC8439]) {
  Deno.test(`aeadOpen() refuses every single-bit change of ${v.name}`, async () => {
    const key = unhex(v.key), iv = unhex(v.iv), aad = unhex(v.aad);
    const sealed = unhex(v.ct + v.tag);
    // Ciphertext and tag: flip each byte's low bit and high bit.
    for (let i = 0; i < sealed.length; i++) {
      for (const bit of [0x01, 0x80]) {
        const bad = sealed.slice();
        bad[i]! ^= bit;
        await assertRejectsWith(
          aeadOpen(v.aead, key, iv, aad, bad),
          ProtocolError,
          "Cannot open record: authentication failed",
        );
      }
    }
    // AAD, nonce, truncation.
    for (let i = 0; i < aad.length; i++) {
      const bad = aad.slice();
      bad[i]! ^= 1;
      await assertRejectsWith(
        aeadOpen(v.aead, key, iv, bad, sealed),
        ProtocolError,
        "Cannot open record: authentication failed",
      );
    }
    const badIv = iv.slice();
    badIv[11]! ^= 1;
    await assertRejectsWith(
      aeadOpen(v.aead, key, badIv, aad, sealed),
      ProtocolError,
      "Cannot open record: authentication failed",
    );
    await assertRejectsWith(
      aeadOpen(v.aead, key, iv, aad, sealed.subarray(0, sealed.length - 1)),
      ProtocolError,
      "Cannot open record: authentication failed",
    );
    await assertRejectsWith(
      aeadOpen(v.aead, key, iv, aad, sealed.subarray(0, 15)),
      ProtocolError,
      "Cannot open record: authentication failed",
    );
  });
}
