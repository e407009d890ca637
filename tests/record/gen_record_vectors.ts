/**
 * Writes tests/vectors/record_v1.json from the reference implementation.
 * Run: deno run --allow-write=tests/vectors tests/record/gen_record_vectors.ts
 * then deno fmt tests/vectors/record_v1.json
 *
 * @module
 */
import { hex, refEpochs, refLenKey, refSealRecord, type Suite } from "./_reference.ts";

const enc = new TextEncoder();
const secret = Uint8Array.from({ length: 32 }, (_, i) => i);
const script: { epoch: number; payload: Uint8Array; pad: number }[] = [
  { epoch: 0, payload: new Uint8Array(0), pad: 0 },
  { epoch: 0, payload: enc.encode("hello"), pad: 7 },
  { epoch: 0, payload: Uint8Array.from({ length: 32 }, (_, i) => i), pad: 0 },
  { epoch: 1, payload: enc.encode("after ratchet"), pad: 3 },
  { epoch: 1, payload: Uint8Array.from({ length: 100 }, (_, i) => 255 - i), pad: 255 },
  { epoch: 2, payload: enc.encode("epoch 2"), pad: 0 },
];

function suiteVectors(suite: Suite) {
  const lenKey = refLenKey(secret);
  const epochs = refEpochs(suite, secret, 2);
  return {
    aead: suite,
    len_key: hex(lenKey),
    epochs: epochs.map((e, n) => ({
      epoch: n,
      secret: hex(e.secret),
      key: hex(e.key),
      iv: hex(e.iv),
    })),
    records: script.map((r, seq) => ({
      seq,
      epoch: r.epoch,
      payload: hex(r.payload),
      pad_len: r.pad,
      record: hex(
        refSealRecord(suite, lenKey, epochs[r.epoch]!, r.epoch, BigInt(seq), r.payload, r.pad),
      ),
    })),
  };
}

const doc = {
  description:
    "NitroSocks record layer v1 vectors (docs/PROTOCOL.md part 3 (record layer) section 'Test vectors'). " +
    "One direction, traffic secret 00..1f; records sealed in order from seq 0; the sender " +
    "ratchets before seq 3 and before seq 5. 'record' is the whole wire record " +
    "(masked header ‖ ciphertext ‖ tag). Padding bytes are zero.",
  traffic_secret: hex(secret),
  suites: (["aes-256-gcm", "aes-128-gcm", "chacha20-poly1305"] as const).map(suiteVectors),
};

if (import.meta.main) {
  const path = new URL("../vectors/record_v1.json", import.meta.url);
  await Deno.writeTextFile(path, JSON.stringify(doc, null, 2) + "\n");
  console.log(`wrote ${path.pathname}`);
}
