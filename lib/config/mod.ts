/**
 * Configuration: `server.yml`, `users.yml` and client profiles, parsed to
 * frozen objects or refused with a `ConfigError` that names the file, line,
 * column and key path, with a hint. Never half-applied.
 *
 * Every key, type and default is described in docs/CONFIG.md.
 *
 * @example
 * ```ts ignore
 * import { loadServerConfig, loadUsers, matchRoute } from "./mod.ts";
 * const server = await loadServerConfig("server.yml");
 * const { users } = await loadUsers(server.usersFile);
 * const alice = users.get("alice")!;
 * matchRoute(alice.routes, { proto: "tcp", host: "example.com", port: 443 });
 * ```
 *
 * @module
 */
export {
  type AccountingSettings,
  type AdminSettings,
  type CryptoSettings,
  type EgressSettings,
  type HostPort,
  loadServerConfig,
  MIN_ADMIN_TOKEN_LENGTH,
  parseServerConfig,
  type ServerConfig,
  type SessionSettings,
  type StoreSettings,
  TRANSPORT_NAMES,
  type TransportName,
} from "./server.ts";
export {
  type DnsSettings,
  type Forward,
  type ForwardProtocol,
  UDP_FORWARD_IDLE_S,
} from "./forwards.ts";
export { formatServerUrl, parseServerUrl, type ServerUrl } from "./server_url.ts";
export {
  addUserToYaml,
  loadUsers,
  type NewUser,
  parseUsers,
  reloadUsersFile,
  removeUserFromYaml,
  updateUserInYaml,
  type UserChanges,
  type UserEntry,
  type UsersConfig,
  type UserSource,
} from "./users.ts";
export {
  type ClientConfig,
  type ClientPassword,
  type ClientProfileFields,
  type Endpoint,
  formatClientProfile,
  loadClientConfig,
  parseClientConfig,
  shareLinkProfile,
} from "./client.ts";
export {
  certificateHashes,
  decodeShareLink,
  derToPem,
  encodeShareLink,
  type EncodeShareLinkOptions,
  MAX_SHARE_LINK_BYTES,
  SHARE_LINK_VERSION,
  SHARE_SCHEME,
  type SharedProfile,
  ShareTag,
} from "./share_link.ts";
export {
  allRoutes,
  compileRoutes,
  matchRoute,
  parseRoute,
  type Route,
  type RouteRules,
  RouteSet,
  routeSet,
  type RouteTarget,
  type RouteVerdict,
} from "./routes.ts";
export { DEFAULT_EGRESS_BLOCK, EgressBlock, egressEntryError, SELF } from "./egress.ts";
export { type Cidr, cidrContains, formatIp, type IpBytes, parseCidr, parseIp } from "../wire/ip.ts";
export { decodeBase32, encodeBase32 } from "./base32.ts";
/** A password as users.yml stores it (SCRAM-SHA-256): salt, iterations, StoredKey, ServerKey. */
export type { ScramVerifier } from "../crypto/scram.ts";
export {
  AEAD_NAMES,
  type AeadName,
  CRYPTO_BACKEND_NAMES,
  type CryptoBackendName,
  DEFAULT_AEAD,
  DEFAULT_KEX,
  DEFAULT_PADDING,
  KEX_NAMES,
  type KexName,
  PADDING_NAMES,
  type PaddingName,
  readConfigText,
  USER_NAME_PATTERN,
} from "./_shared.ts";
export {
  parseDuration,
  parseQuota,
  parseSize,
  type ParseSizeOptions,
  type Quota,
} from "./units.ts";
export { isHost, isLoopbackHost } from "../wire/host_port.ts";
export {
  type FileWatch,
  WATCH_DEBOUNCE_MS,
  watchFile,
  type WatchFileOptions,
  watchFiles,
} from "./watch.ts";
