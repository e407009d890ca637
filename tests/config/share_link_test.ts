import assert from "node:assert/strict";
import fc from "fast-check";
import {
  type ClientProfileFields,
  decodeShareLink,
  encodeShareLink,
  formatClientProfile,
  parseClientConfig,
  SHARE_SCHEME,
} from "../../lib/config/mod.ts";
import { fromBase64Url, hash, toBase64Url } from "../../lib/crypto/mod.ts";
import { ConfigError } from "../../lib/errors.ts";
import { assertThrowsWith } from "../support/assert.ts";

interface VectorProfile {
  server: { host: string; port: number };
  serverName: string;
  transport: "tls" | "tcp" | "ws" | "wss";
  path?: string;
  serverKey: string;
  caPem?: string;
  user: string;
  key: string;
  token?: string;
  password?: { salt: string; iterations: number };
  jwt?: { file: string } | { token: string };
  totpSecret?: string;
  tlsClient?: { certPem: string; keyPem: string };
  socks5Listen?: { host: string; port: number };
}

const vectors = JSON.parse(
  await Deno.readTextFile(new URL("../vectors/share_link_v1.json", import.meta.url)),
) as {
  valid: {
    why: string;
    pin_ca: boolean;
    profile: VectorProfile;
    link: string;
    ca_sha256?: string;
  }[];
  invalid: { why: string; link: string; error: string }[];
};

const unhex = (h: string) => new Uint8Array(h.match(/../g)!.map((x) => parseInt(x, 16)));
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

function fields(p: VectorProfile): ClientProfileFields {
  const { token: _t, totpSecret: _s, password: _p, ...rest } = p;
  return {
    ...rest,
    serverKey: unhex(p.serverKey),
    key: unhex(p.key),
    ...(p.token === undefined ? {} : { token: unhex(p.token) }),
    ...(p.totpSecret === undefined ? {} : { totpSecret: unhex(p.totpSecret) }),
    ...(p.password === undefined
      ? {}
      : { password: { salt: unhex(p.password.salt), iterations: p.password.iterations } }),
  };
}

/** The DER of the first PEM certificate in `pem`. */
function der(pem: string): Uint8Array {
  const b64 = pem.split("-----")[2]!.replace(/\s+/g, "");
  return fromBase64Url(b64.replace(/\+/g, "-").replace(/\//g, "_"));
}

Deno.test("encodeShareLink() and decodeShareLink() match the version 1 vectors", () => {
  for (const v of vectors.valid) {
    const f = fields(v.profile);
    assert.equal(encodeShareLink(f, { pinCa: v.pin_ca }), v.link, v.why);
    const back = decodeShareLink(v.link);
    if (v.ca_sha256 === undefined) {
      assert.deepEqual(back.profile, f, v.why);
      assert.equal(back.caSha256, undefined);
    } else {
      const { caPem: _, ...rest } = f;
      assert.deepEqual(back.profile, rest, v.why);
      assert.equal(hex(back.caSha256!), v.ca_sha256);
      assert.equal(v.ca_sha256, hex(hash(der(v.profile.caPem!))), "the pin is SHA-256 of the DER");
    }
    // The profile the link carries is one the client loads.
    const caPem = v.profile.caPem;
    parseClientConfig(
      formatClientProfile({ ...back.profile, ...(caPem === undefined ? {} : { caPem }) }),
      "x.yml",
    );
  }
});

Deno.test("decodeShareLink() refuses each invalid vector with its message", () => {
  for (const v of vectors.invalid) {
    assertThrowsWith(() => decodeShareLink(v.link), ConfigError, v.error);
  }
});

Deno.test("a typical profile's link is at most 400 characters; the old YAML link was 2,400", () => {
  const typical = vectors.valid[0]!;
  assert.ok(typical.link.length <= 400, `${typical.link.length} characters`);
  const yamlLink = SHARE_SCHEME +
    toBase64Url(new TextEncoder().encode(formatClientProfile(fields(typical.profile))));
  assert.ok(yamlLink.length > 1_500, `the YAML link would be ${yamlLink.length}`);
});

const hostArb = fc.oneof(
  fc.domain(),
  fc.ipV4(),
  fc.ipV6(),
);
const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const profileArb: fc.Arbitrary<ClientProfileFields> = fc.record({
  host: hostArb,
  port: fc.integer({ min: 1, max: 65535 }),
  transport: fc.constantFrom("tls" as const, "tcp" as const, "ws" as const, "wss" as const),
  path: fc.stringMatching(/^\/[a-z0-9/_-]{0,30}$/),
  serverName: fc.option(fc.domain(), { nil: undefined }),
  serverKey: bytes(64),
  user: fc.stringMatching(/^[A-Za-z0-9._-]{1,64}$/),
  key: bytes(32),
  factor: fc.oneof(
    bytes(32).map((token) => ({ token })),
    fc.tuple(bytes(16), fc.integer({ min: 4096, max: 10_000_000 })).map(([salt, iterations]) => ({
      password: { salt, iterations },
    })),
    fc.stringMatching(/^[a-z0-9._-]{1,40}$/).map((file) => ({ jwt: { file } })),
    fc.stringMatching(/^[A-Za-z0-9_-]{2,20}\.[A-Za-z0-9_-]{2,40}\.[A-Za-z0-9_-]{0,40}$/).map((
      token,
    ) => ({ jwt: { token } })),
  ),
  totpSecret: fc.option(fc.uint8Array({ minLength: 10, maxLength: 40 }), { nil: undefined }),
}).map((r) => ({
  server: { host: r.host, port: r.port },
  serverName: r.serverName ?? r.host,
  transport: r.transport,
  ...(r.transport === "ws" || r.transport === "wss" ? { path: r.path } : {}),
  serverKey: r.serverKey,
  user: r.user,
  key: r.key,
  ...r.factor,
  ...(r.totpSecret === undefined ? {} : { totpSecret: r.totpSecret }),
}));

Deno.test("decodeShareLink(encodeShareLink(p)) gives p back for any profile (property)", () => {
  fc.assert(
    fc.property(profileArb, (p) => {
      const link = encodeShareLink(p);
      assert.match(link, /^nitrosocks:\/\/[A-Za-z0-9_-]+$/);
      assert.deepEqual(decodeShareLink(link).profile, p);
    }),
    { numRuns: 300 },
  );
});

/** Only ConfigError "Invalid share link: …", never another exception. */
function refusedCleanly(link: string): void {
  try {
    decodeShareLink(link);
  } catch (e) {
    assert.ok(e instanceof ConfigError, `${e}`);
    assert.match(e.message, /^Invalid share link: \S/);
    return;
  }
  throw new Error(`accepted ${link}`);
}

Deno.test("a changed or cut link is refused with a clear error, never accepted (property)", () => {
  fc.assert(
    fc.property(
      profileArb,
      fc.nat(),
      fc.integer({ min: 1, max: 255 }),
      fc.nat(),
      (p, at, flip, cut) => {
        const link = encodeShareLink(p);
        const body = fromBase64Url(link.slice(SHARE_SCHEME.length));
        const i = at % body.length;
        const changed = body.slice();
        changed[i]! ^= flip;
        refusedCleanly(SHARE_SCHEME + toBase64Url(changed));
        refusedCleanly(link.slice(0, SHARE_SCHEME.length + (cut % (link.length - 13))));
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("any body with a valid check is decoded or refused with ConfigError, nothing else (property)", () => {
  const withCheck = (b: Uint8Array) => {
    const out = new Uint8Array(b.length + 4);
    out.set(b);
    out.set(hash(b).subarray(0, 4), b.length);
    return SHARE_SCHEME + toBase64Url(out);
  };
  const field = fc.tuple(fc.integer({ min: 0, max: 20 }), fc.uint8Array({ maxLength: 70 })).map((
    [tag, v],
  ) => [tag, v.length, ...v]);
  fc.assert(
    fc.property(fc.array(field, { maxLength: 14 }), (fs) => {
      const link = withCheck(new Uint8Array([1, ...fs.flat()]));
      try {
        decodeShareLink(link);
      } catch (e) {
        assert.ok(e instanceof ConfigError, `${e}`);
        assert.match(e.message, /^Invalid share link: \S/);
      }
    }),
    { numRuns: 1000 },
  );
});
