/**
 * `users.yml`: who may connect, with what credentials, to which routes, and
 * how much. Parsed to a frozen object or refused with a `ConfigError`; edited
 * in place (comments and other users kept) by `addUserToYaml` and
 * `removeUserFromYaml`.
 *
 * @module
 */
import { ConfigError } from "../errors.ts";
import { toBase64Url } from "../crypto/mod.ts";
import {
  base32Secret,
  boolean,
  childPath,
  configError,
  integer,
  key,
  list,
  locate,
  object,
  optional,
  quota,
  rate,
  record,
  refine,
  required,
  schemaKeys,
  secretBytes,
  string,
  timestamp,
  withDefault,
} from "./_schema.ts";
import { deepFreeze, parseWith, readConfigText, USER_NAME_PATTERN } from "./_shared.ts";
import {
  deleteYamlEntry,
  editYamlEntries,
  parseYaml,
  setYamlEntry,
  type YamlEdit,
} from "./_yaml.ts";
import { encodeBase32 } from "./base32.ts";
import { JWT_MIN_SECRET_BYTES } from "../crypto/jwt.ts";
import {
  SCRAM_KEY_BYTES,
  SCRAM_MAX_ITERATIONS,
  SCRAM_MIN_ITERATIONS,
  SCRAM_SALT_BYTES,
  type ScramVerifier,
} from "../crypto/scram.ts";
import { parseRoute } from "./routes.ts";
import { streamCount } from "./server.ts";
import type { Quota } from "./units.ts";

/** One user of the server. */
export interface UserEntry {
  /** The user name (`USER_NAME_PATTERN`). */
  name: string;
  /** Client X25519 public key, 32 bytes. */
  publicKey: Uint8Array;
  /** Pre-shared token, 32 bytes: the second factor, unless the user has a `password`. */
  token?: Uint8Array;
  /** SCRAM-SHA-256 verifier of the user's password: the second factor, unless the user has a `token`. */
  password?: ScramVerifier;
  /**
   * The user logs in with a JWT (`jwt:` in users.yml): the user's own HS256
   * secret and Ed25519 public key, if any (the server-wide `auth.jwt` keys
   * verify the user's tokens too).
   */
  jwt?: { secret?: Uint8Array; publicKey?: Uint8Array };
  /** RFC 6238 secret, when the user must also send a TOTP code. */
  totpSecret?: Uint8Array;
  /** Allowed route patterns (see `routes.ts`); default ["*"]. */
  routes: string[];
  /** Bandwidth limit in bytes per second, each direction, shared by all the user's tunnels. */
  bandwidth?: number;
  /** Most concurrent streams this user may open over all tunnels. */
  maxStreams?: number;
  /** Most concurrent tunnels (sessions) of this user. */
  maxTunnels?: number;
  /** Tunnel bytes (both directions) allowed per period. */
  quota?: Quota;
  /** The user is refused from this instant on. */
  expires?: Date;
  /** The user is refused while set. */
  disabled: boolean;
}

/**
 * Where a server finds its users: a `Map` of parsed users (what
 * {@linkcode loadUsers} returns) or anything that looks them up by name.
 */
export interface UserSource {
  /** The user called `name`, if any. */
  get(name: string): UserEntry | undefined;
  /** Every user's name (a `Map` of users is a source as it is). */
  keys(): Iterable<string>;
  /** How many users there are. */
  readonly size: number;
}

/** The parsed `users.yml`. */
export interface UsersConfig {
  /** The users file as given. */
  file: string;
  /** Every user, by name. */
  users: Map<string, UserEntry>;
}

/** A route pattern checked by `parseRoute`. */
export const routePattern = () =>
  refine(string({ what: "a route pattern" }), (s) => {
    try {
      parseRoute(s);
      return undefined;
    } catch (e) {
      const why = e instanceof Error ? e.message.replace(/^Invalid route ".*?": /, "") : String(e);
      return {
        detail: `${JSON.stringify(s)}: ${why}`,
        hint: 'e.g. "*", "tcp:*.example.com:443", "10.0.0.*:22", "[::1]:22"',
      };
    }
  });

const passwordSchema = object({
  salt: required(key(SCRAM_SALT_BYTES)),
  iterations: required(integer(SCRAM_MIN_ITERATIONS, SCRAM_MAX_ITERATIONS)),
  stored_key: required(key(SCRAM_KEY_BYTES)),
  server_key: required(key(SCRAM_KEY_BYTES)),
});

const userSchema = object({
  public_key: required(key(32)),
  token: optional(key(32)),
  password: optional(passwordSchema),
  jwt: optional(object({
    secret: optional(secretBytes(JWT_MIN_SECRET_BYTES, 256)),
    public_key: optional(key(32)),
  })),
  totp: optional(base32Secret(16, 64)),
  routes: withDefault(list(routePattern()), ["*"]),
  bandwidth: optional(rate(1024, 1e12)),
  max_streams: optional(streamCount()),
  max_tunnels: optional(integer(1, 1_000_000)),
  quota: optional(quota(1024, 60)),
  expires: optional(timestamp()),
  disabled: withDefault(boolean(), false),
});

const usersSchema = object({
  users: withDefault(
    record(userSchema, { keyPattern: USER_NAME_PATTERN, keyWhat: "1-64 of A-Z a-z 0-9 . _ -" }),
    new Map(),
  ),
});

/** Every key path `users.yml` accepts, e.g. `users.*.routes` (see `schemaKeys`). */
export const USERS_CONFIG_KEYS: readonly string[] = Object.freeze(schemaKeys(usersSchema));

/**
 * Parses `users.yml` text.
 *
 * @example
 * ```ts
 * import { parseUsers } from "./users.ts";
 * const k = "A".repeat(43);
 * const cfg = parseUsers(`users:\n  alice: {public_key: ${k}, token: ${k}}\n`, "users.yml");
 * console.log(cfg.users.get("alice")?.routes); // ["*"]
 * ```
 */
export function parseUsers(text: string, file: string): UsersConfig {
  const { raw, root } = parseWith(text, file, usersSchema);
  const users = new Map<string, UserEntry>();
  const byKey = new Map<string, string>();
  for (const [name, u] of raw.users) {
    const pk = toBase64Url(u.public_key);
    const other = byKey.get(pk);
    if (other !== undefined) {
      const pos = locate(root, ["users", name, "public_key"]);
      throw configError(
        { file, path: childPath(childPath("users", name), "public_key") },
        pos,
        `Invalid users.${name}.public_key: the same key is already used by user ${
          JSON.stringify(other)
        }`,
        "every user needs their own key pair",
      );
    }
    byKey.set(pk, name);
    const factors = [
      u.token === undefined ? undefined : "token",
      u.password === undefined ? undefined : "password",
      u.jwt === undefined ? undefined : "jwt",
    ].filter((f) => f !== undefined);
    if (factors.length !== 1) {
      throw configError(
        { file, path: childPath("users", name) },
        locate(root, ["users", name]),
        `Invalid users.${name}: ${
          factors.length === 0 ? "no second factor" : `both ${factors.join(" and ")}`
        }; a user has exactly one, token, password or jwt`,
        factors.length === 0
          ? `add a token, or remove the user and run "nitrosocks user add ${name} --password"`
          : "keep only one of them",
      );
    }
    const jwt = u.jwt;
    const pw = u.password;
    users.set(name, {
      name,
      publicKey: u.public_key,
      ...(u.token === undefined ? {} : { token: u.token }),
      ...(pw === undefined ? {} : {
        password: {
          salt: pw.salt,
          iterations: pw.iterations,
          storedKey: pw.stored_key,
          serverKey: pw.server_key,
        },
      }),
      ...(jwt === undefined ? {} : {
        jwt: {
          ...(jwt.secret === undefined ? {} : { secret: jwt.secret }),
          ...(jwt.public_key === undefined ? {} : { publicKey: jwt.public_key }),
        },
      }),
      ...(u.totp === undefined ? {} : { totpSecret: u.totp }),
      routes: u.routes,
      ...(u.bandwidth === undefined ? {} : { bandwidth: u.bandwidth }),
      ...(u.max_streams === undefined ? {} : { maxStreams: u.max_streams }),
      ...(u.max_tunnels === undefined ? {} : { maxTunnels: u.max_tunnels }),
      ...(u.quota === undefined ? {} : { quota: u.quota }),
      ...(u.expires === undefined ? {} : { expires: u.expires }),
      disabled: u.disabled,
    });
  }
  return deepFreeze({ file, users });
}

/**
 * Reads and parses `users.yml`. Safe to call again to reload: it either
 * returns a complete new config or throws, never a partial one.
 */
export async function loadUsers(path: string): Promise<UsersConfig> {
  return parseUsers(await readConfigText(path), path);
}

/**
 * Reads `users.yml` again for a running server, like {@link loadUsers}, but
 * refuses a file with no `users:` key (empty, or only comments): that is a
 * file caught half-written (truncated, not yet filled), and taking it would
 * end every user's live sessions. `users: {}` removes every user.
 *
 * @example
 * ```ts ignore
 * server.setUsers((await reloadUsersFile(config.usersFile)).users);
 * ```
 */
export async function reloadUsersFile(path: string): Promise<UsersConfig> {
  const text = await readConfigText(path);
  const cfg = parseUsers(text, path);
  const root = parseYaml(text, path);
  if (root.kind !== "map" || !root.entries.some((e) => e.key === "users")) {
    throw new ConfigError("No users: key in the file (empty, or caught half-written)", {
      file: path,
      hint: 'write "users: {}" to remove every user',
    });
  }
  return cfg;
}

/** A user to add with {@link addUserToYaml}. */
export interface NewUser {
  /** The user name (`USER_NAME_PATTERN`). */
  name: string;
  /** Client X25519 public key, 32 bytes. */
  publicKey: Uint8Array;
  /** Pre-shared token, 32 bytes (exactly one of `token` and `password`). */
  token?: Uint8Array;
  /** The password's SCRAM-SHA-256 verifier (exactly one of `token`, `password` and `jwt`). */
  password?: ScramVerifier;
  /** A JWT user: their own HS256 secret and/or Ed25519 public key (both may be absent). */
  jwt?: { secret?: Uint8Array; publicKey?: Uint8Array };
  /** RFC 6238 secret, when the user must also send a TOTP code. */
  totpSecret?: Uint8Array;
  /** Allowed route patterns; default ["*"]. */
  routes?: string[];
  /** A rate such as "10MB/s". */
  bandwidth?: string;
  /** Most concurrent streams over all tunnels. */
  maxStreams?: number;
  /** Most concurrent tunnels. */
  maxTunnels?: number;
  /** A quota such as "50GB/30d". */
  quota?: string;
  /** The user is refused from this instant on. */
  expires?: Date;
}

/**
 * Changes to a user for {@link updateUserInYaml}: a value sets the key,
 * `null` removes it (the default applies again), absent leaves it alone.
 */
export interface UserChanges {
  /** Allowed route patterns. */
  routes?: string[];
  /** A rate such as "10MB/s". */
  bandwidth?: string | null;
  /** A quota such as "50GB/30d". */
  quota?: string | null;
  /** Most concurrent streams over all tunnels. */
  maxStreams?: number | null;
  /** Most concurrent tunnels. */
  maxTunnels?: number | null;
  /** The user is refused from this instant on. */
  expires?: Date | null;
  /** Refuse the user (true) or let them in again (false). */
  disabled?: boolean;
  /**
   * A password user's new StoredKey and ServerKey, derived with the salt and
   * iteration count already in the file (which stay as they are).
   */
  passwordKeys?: { storedKey: Uint8Array; serverKey: Uint8Array };
}

/**
 * Returns `text` with `user` added under `users:`, keeping comments and the
 * other users. Throws `ConfigError` when the file is invalid, the name is
 * taken or not allowed, or the result would not parse.
 *
 * @example
 * ```ts
 * import { addUserToYaml } from "./users.ts";
 * const text = addUserToYaml("users: {}\n", "users.yml", {
 *   name: "bob", publicKey: new Uint8Array(32).fill(1), token: new Uint8Array(32).fill(2),
 * });
 * ```
 */
export function addUserToYaml(text: string, file: string, user: NewUser): string {
  const current = parseUsers(text, file);
  if (!USER_NAME_PATTERN.test(user.name)) {
    throw new ConfigError(
      `Invalid user name ${JSON.stringify(user.name)}: expected 1-64 of A-Z a-z 0-9 . _ -`,
    );
  }
  if (current.users.has(user.name)) {
    throw new ConfigError(`User ${JSON.stringify(user.name)} already exists`, {
      file,
      hint: "choose another name or remove the user first",
    });
  }
  const value: Record<string, unknown> = { public_key: toBase64Url(user.publicKey) };
  if (user.token !== undefined) value.token = toBase64Url(user.token);
  if (user.password !== undefined) {
    value.password = {
      salt: toBase64Url(user.password.salt),
      iterations: user.password.iterations,
      stored_key: toBase64Url(user.password.storedKey),
      server_key: toBase64Url(user.password.serverKey),
    };
  }
  if (user.jwt !== undefined) {
    const j: Record<string, string> = {};
    if (user.jwt.secret !== undefined) j.secret = toBase64Url(user.jwt.secret);
    if (user.jwt.publicKey !== undefined) j.public_key = toBase64Url(user.jwt.publicKey);
    value.jwt = j;
  }
  if (user.totpSecret !== undefined) value.totp = encodeBase32(user.totpSecret);
  value.routes = user.routes ?? ["*"];
  if (user.bandwidth !== undefined) value.bandwidth = user.bandwidth;
  if (user.maxStreams !== undefined) value.max_streams = user.maxStreams;
  if (user.maxTunnels !== undefined) value.max_tunnels = user.maxTunnels;
  if (user.quota !== undefined) value.quota = user.quota;
  if (user.expires !== undefined) value.expires = user.expires.toISOString();
  value.disabled = false;
  const out = setYamlEntry(text, file, ["users", user.name], value);
  parseUsers(out, file);
  return out;
}

/**
 * Returns `text` without user `name` (comments kept); throws `ConfigError`
 * when there is no such user.
 */
export function removeUserFromYaml(text: string, file: string, name: string): string {
  const current = parseUsers(text, file);
  if (!current.users.has(name)) {
    throw new ConfigError(`No user ${JSON.stringify(name)}`, { file });
  }
  const out = deleteYamlEntry(text, file, ["users", name]);
  if (out === undefined) throw new ConfigError(`No user ${JSON.stringify(name)}`, { file });
  parseUsers(out, file);
  return out;
}

/**
 * Returns `text` with user `name`'s keys changed as `changes` says, keeping
 * comments, the user's other keys and the other users. Throws `ConfigError`
 * when the file is invalid, there is no such user, or the result would not
 * parse (e.g. a malformed rate), naming the line and column.
 *
 * @example
 * ```ts
 * import { addUserToYaml, updateUserInYaml } from "./users.ts";
 * const k = { publicKey: new Uint8Array(32).fill(1), token: new Uint8Array(32).fill(2) };
 * const text = addUserToYaml("users: {}\n", "users.yml", { name: "bob", ...k });
 * updateUserInYaml(text, "users.yml", "bob", { disabled: true, bandwidth: "1MB/s" });
 * ```
 */
export function updateUserInYaml(
  text: string,
  file: string,
  name: string,
  changes: UserChanges,
): string {
  const current = parseUsers(text, file);
  if (!current.users.has(name)) {
    throw new ConfigError(`No user ${JSON.stringify(name)}`, {
      file,
      hint: "list the users with 'nitrosocks user list'",
    });
  }
  const edits: YamlEdit[] = [];
  const put = (key: string, v: unknown) => {
    if (v !== undefined) edits.push({ path: ["users", name, key], value: v ?? undefined });
  };
  put("routes", changes.routes);
  put("bandwidth", changes.bandwidth);
  put("quota", changes.quota);
  put("max_streams", changes.maxStreams);
  put("max_tunnels", changes.maxTunnels);
  put("expires", changes.expires === null ? null : changes.expires?.toISOString());
  put("disabled", changes.disabled);
  const keys = changes.passwordKeys;
  if (keys !== undefined) {
    if (current.users.get(name)!.password === undefined) {
      throw new ConfigError(`User ${JSON.stringify(name)} does not log in with a password`, {
        file,
        hint: `remove the user and run "nitrosocks user add ${name} --password"`,
      });
    }
    edits.push(
      { path: ["users", name, "password", "stored_key"], value: toBase64Url(keys.storedKey) },
      { path: ["users", name, "password", "server_key"], value: toBase64Url(keys.serverKey) },
    );
  }
  const out = editYamlEntries(text, file, edits);
  parseUsers(out, file);
  return out;
}
