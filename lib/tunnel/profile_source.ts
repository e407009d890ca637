/**
 * Where a client's profile comes from: a YAML file, a `nitrosocks://` share
 * link, or a file holding a link. A link that names the server's CA by its
 * SHA-256 (docs/CONFIG.md, "Share links") is completed here: the server's
 * TLS chain is fetched once, untrusted, and the certificate whose hash
 * matches becomes the profile's `ca`; any other answer is refused.
 *
 * @module
 */
import {
  type ClientConfig,
  decodeShareLink,
  derToPem,
  parseClientConfig,
  readConfigText,
  SHARE_SCHEME,
  shareLinkProfile,
} from "../config/mod.ts";
import { ctEqual, hash, toBase64Url } from "../crypto/mod.ts";
import { fetchPeerChain } from "../transport/mod.ts";
import { formatHostPort, type HostPort } from "../wire/host_port.ts";
import { ConfigError } from "../errors.ts";

/** Options for {@linkcode resolveShareLink} and {@linkcode loadProfile}. */
export interface ProfileSourceOptions {
  /** Fetch the CA from here instead of the link's server address. */
  server?: HostPort;
  /** Deadline for fetching the CA (ms); default 10 000. */
  timeoutMs?: number;
}

/**
 * The profile text (YAML, as `user add` writes it) a share link carries,
 * with the CA fetched from the server and checked against the link's hash
 * when the link names it that way. Throws `ConfigError` for a malformed
 * link or a server that does not send the CA the link names; a dial error
 * ("connection refused by …") when the server cannot be reached.
 *
 * @example
 * ```ts ignore
 * const yaml = await resolveShareLink(link);
 * await Deno.writeTextFile("alice.yml", yaml, { mode: 0o600 });
 * ```
 */
export async function resolveShareLink(
  link: string,
  options: ProfileSourceOptions = {},
): Promise<string> {
  const shared = decodeShareLink(link);
  const pin = shared.caSha256;
  if (pin === undefined) return shareLinkProfile(shared);
  const { server, serverName } = shared.profile;
  const at = options.server ?? server;
  const chain = await fetchPeerChain({
    hostname: at.host,
    port: at.port,
    serverName,
    ...(options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }),
  });
  const ca = chain.find((der) => ctEqual(hash(der), pin));
  if (ca === undefined) {
    throw new ConfigError(
      `The server at ${
        formatHostPort(at.host, at.port)
      } did not send the CA this share link names (SHA-256 ${
        toBase64Url(pin).slice(0, 12)
      }…): the link is for another server, or something between you and it presents another certificate`,
      { hint: "check the address, or ask for the profile file instead of the link" },
    );
  }
  return shareLinkProfile(shared, derToPem(ca, "CERTIFICATE"));
}

/** True when `text` is a share link rather than a profile or a path. */
export function isShareLink(text: string): boolean {
  return text.trimStart().startsWith(SHARE_SCHEME);
}

/**
 * Loads a client profile from a path to a YAML file, a share link, or a
 * path to a file holding a share link (`client --config link.txt`).
 *
 * @example
 * ```ts ignore
 * const config = await loadProfile("alice.yml");
 * ```
 */
export async function loadProfile(
  source: string,
  options: ProfileSourceOptions = {},
): Promise<ClientConfig> {
  if (isShareLink(source)) {
    return parseClientConfig(await resolveShareLink(source, options), "<share link>");
  }
  const text = await readConfigText(source);
  if (isShareLink(text)) {
    return parseClientConfig(await resolveShareLink(text, options), source);
  }
  return parseClientConfig(text, source);
}
