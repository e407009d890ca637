/**
 * Names, defaults and helpers shared by the server, users and client loaders.
 *
 * @module
 */
import { dirname, isAbsolute, join } from "node:path";
import { ConfigError } from "../errors.ts";
import { type At, deepFreeze, type Schema } from "./_schema.ts";
import { parseYaml, type YamlNode } from "./_yaml.ts";

/** Key exchanges, strongest first. */
export const KEX_NAMES = ["x25519-mlkem768", "x25519"] as const;
/** A key exchange name. */
export type KexName = typeof KEX_NAMES[number];
/** Record AEADs. */
export const AEAD_NAMES = ["aes-256-gcm", "aes-128-gcm", "chacha20-poly1305"] as const;
/** A record AEAD name. */
export type AeadName = typeof AEAD_NAMES[number];

/** Record crypto backends (`crypto.backend`); `auto` picks OpenSSL when it loads. */
export const CRYPTO_BACKEND_NAMES = ["auto", "openssl", "webcrypto"] as const;
/** A `crypto.backend` value. */
export type CryptoBackendName = typeof CRYPTO_BACKEND_NAMES[number];

/**
 * Record padding modes (`padding:`), weakest first: docs/PROTOCOL.md part 3
 * (record layer) section 8; the session uses the stronger of the client's
 * and the server's (part 2 (handshake) section 4.7).
 */
export const PADDING_NAMES = ["none", "random", "bucket"] as const;
/** A `padding:` value. */
export type PaddingName = typeof PADDING_NAMES[number];
/** Padding is on unless a config turns it off. */
export const DEFAULT_PADDING: PaddingName = "random";

/** Default key-exchange preference. */
export const DEFAULT_KEX: readonly KexName[] = ["x25519-mlkem768", "x25519"];
/** Default AEAD preference. */
export const DEFAULT_AEAD: readonly AeadName[] = [
  "aes-256-gcm",
  "chacha20-poly1305",
  "aes-128-gcm",
];

/** User names: letters, digits, ".", "_", "-"; 1 to 64 characters. */
export const USER_NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

export const KiB = 1024;
export const MiB = 1024 * 1024;
export const GiB = 1024 * 1024 * 1024;

/** Resolves `ref` against the directory of `file` (absolute refs stay). */
export function resolveRef(file: string, ref: string): string {
  return isAbsolute(ref) ? ref : join(dirname(file), ref);
}

/** Parses text with a schema; returns the tree too, for positions. */
export function parseWith<T>(
  text: string,
  file: string,
  schema: Schema<T>,
): { raw: T; root: YamlNode } {
  const root = parseYaml(text, file);
  const at: At = { file, path: "" };
  return { raw: schema.parse(root, at), root };
}

/** Reads a whole config file as text; a missing file is a `ConfigError`. */
export async function readConfigText(path: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    throw new ConfigError(`Cannot read config file: ${ioReason(e)}`, { file: path });
  }
}

/** A short reason for an I/O failure. */
export function ioReason(e: unknown): string {
  if (e instanceof Deno.errors.NotFound) return "file not found";
  if (e instanceof Deno.errors.PermissionDenied || (e instanceof Deno.errors.NotCapable)) {
    return "permission denied";
  }
  if (e instanceof Deno.errors.IsADirectory) return "is a directory";
  return e instanceof Error ? e.message : String(e);
}

export { deepFreeze };
