/**
 * `user add|list|remove`: manages `users.yml` in a server directory,
 * keeping its comments and other users, and writes each new user's client
 * profile and share link.
 *
 * @module
 */
import { join } from "node:path";
import { randomBytes } from "../crypto/mod.ts";
import {
  addUserToYaml,
  encodeShareLink,
  formatClientProfile,
  loadServerConfig,
  loadUsers,
  parseClientConfig,
  parseRoute,
  parseUsers,
  removeUserFromYaml,
  updateUserInYaml,
  USER_NAME_PATTERN,
  type UserChanges,
  type UserEntry,
} from "../config/mod.ts";
import {
  decodeServerIdentity,
  generateClientKey,
  generateToken,
  serverPublicKey,
} from "../handshake/mod.ts";
import { certificateNames } from "../pki/mod.ts";
import {
  type HostPort,
  invalidHostPortMessage,
  isIpAddress,
  parseHostPort,
} from "../wire/host_port.ts";
import { exists, replaceFile, withLock } from "./_files.ts";
import { ProvisionInputError } from "./errors.ts";

/** Options for {@link addUser}. */
export interface AddUserOptions {
  /** Server directory holding server.yml. */
  dir: string;
  /** Profile path; default `./NAME.yml`. */
  out?: string;
  /** HOST:PORT clients connect to; default the listen address (0.0.0.0 → 127.0.0.1). */
  server?: string;
  /** Route patterns; default ["*"]. */
  routes?: string[];
  /** Also require a TOTP code. */
  totp?: boolean;
  /** Overwrite an existing profile file. */
  force?: boolean;
  /** Bandwidth each direction, e.g. "10MB/s" (users.yml `bandwidth`). */
  bandwidth?: string;
  /** Data quota, e.g. "50GB/30d" (users.yml `quota`). */
  quota?: string;
  /** Most concurrent tunnels (users.yml `max_tunnels`). */
  maxTunnels?: number;
  /** Most concurrent streams over all tunnels (users.yml `max_streams`). */
  maxStreams?: number;
  /** Refused from this instant on (users.yml `expires`). */
  expires?: Date;
}

/** What {@link addUser} produced. */
export interface AddUserResult {
  /** The users file the user was added to. */
  usersFile: string;
  /** Where the client profile was written. */
  profilePath: string;
  /** The client profile's text. */
  profileYaml: string;
  /** The profile as a `nitrosocks://` share link (secret: it holds the user's keys). */
  link: string;
}

/**
 * Checks a user name: 1 to 64 of A-Z a-z 0-9 . _ -. Throws
 * `ProvisionInputError` otherwise.
 *
 * @example
 * ```ts
 * import { checkUserName } from "./users.ts";
 * checkUserName("alice"); // "alice"
 * ```
 */
export function checkUserName(name: string): string {
  if (!USER_NAME_PATTERN.test(name)) {
    throw new ProvisionInputError(
      `Invalid user name "${name}": expected 1-64 of A-Z a-z 0-9 . _ -`,
    );
  }
  return name;
}

/**
 * Adds user `name` to the server in `opts.dir`: new key pair and token,
 * entry appended to users.yml (comments kept, written atomically), profile
 * written with mode 0600. Refuses an existing user or profile file; throws
 * `ProvisionInputError` for a bad name, address or route pattern.
 *
 * @example
 * ```ts
 * import { addUser, initServerDir } from "./mod.ts";
 * const dir = await Deno.makeTempDir();
 * await initServerDir(dir, { listen: "127.0.0.1:8443" });
 * const { link } = await addUser("alice", { dir, out: `${dir}/alice.yml` });
 * console.log(link.startsWith("nitrosocks://")); // true
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function addUser(name: string, opts: AddUserOptions): Promise<AddUserResult> {
  checkUserName(name);
  const routes = opts.routes ?? ["*"];
  for (const r of routes) {
    try {
      parseRoute(r);
    } catch (e) {
      throw new ProvisionInputError(e instanceof Error ? e.message : String(e), { cause: e });
    }
  }
  const cfg = await loadServerConfig(join(opts.dir, "server.yml"));
  let server: HostPort;
  if (opts.server !== undefined) {
    const hp = parseHostPort(opts.server);
    if (hp === undefined) {
      throw new ProvisionInputError(invalidHostPortMessage(opts.server, "server address"));
    }
    server = hp;
  } else {
    const host = cfg.listen.host === "0.0.0.0"
      ? "127.0.0.1"
      : cfg.listen.host === "::"
      ? "::1"
      : cfg.listen.host;
    server = { host, port: cfg.listen.port };
  }
  if (server.port === 0) {
    throw new ProvisionInputError("the server listens on port 0; pass --server HOST:PORT");
  }

  let serverName = server.host;
  let caPem: string | undefined;
  if (cfg.transport === "tls" && cfg.tls !== undefined) {
    const dnsNames = certificateNames(cfg.tls.certPem).dnsNames;
    if (isIpAddress(server.host)) {
      serverName = dnsNames[0] ?? server.host;
    }
    const caPath = join(cfg.dir, "tls", "ca.crt");
    if (await exists(caPath)) caPem = await Deno.readTextFile(caPath);
  }

  const profilePath = opts.out ?? `${name}.yml`;
  if (!opts.force && await exists(profilePath)) {
    throw new Error(
      `Refusing to overwrite "${profilePath}": it already exists (use --force or --out FILE)`,
    );
  }

  return await withLock(cfg.usersFile, async () => {
    const usersText = await Deno.readTextFile(cfg.usersFile);
    const client = generateClientKey();
    const token = generateToken();
    const totpSecret = opts.totp ? randomBytes(20) : undefined;
    const newUsers = addUserToYaml(usersText, cfg.usersFile, {
      name,
      publicKey: client.publicKey,
      token,
      ...(totpSecret === undefined ? {} : { totpSecret }),
      routes,
      ...(opts.bandwidth === undefined ? {} : { bandwidth: opts.bandwidth }),
      ...(opts.quota === undefined ? {} : { quota: opts.quota }),
      ...(opts.maxTunnels === undefined ? {} : { maxTunnels: opts.maxTunnels }),
      ...(opts.maxStreams === undefined ? {} : { maxStreams: opts.maxStreams }),
      ...(opts.expires === undefined ? {} : { expires: opts.expires }),
    });
    const profileYaml = formatClientProfile({
      server,
      serverName,
      transport: cfg.transport,
      serverKey: serverPublicKey(decodeServerIdentity(cfg.identity)),
      ...(caPem === undefined ? {} : { caPem }),
      user: name,
      key: client.privateKey,
      token,
      ...(totpSecret === undefined ? {} : { totpSecret }),
    });
    parseClientConfig(profileYaml, profilePath); // never hand out a profile that does not load

    await Deno.writeTextFile(profilePath, profileYaml, { mode: 0o600, createNew: !opts.force });
    if (opts.force) await Deno.chmod(profilePath, 0o600);
    try {
      await replaceFile(cfg.usersFile, newUsers);
    } catch (e) {
      await Deno.remove(profilePath).catch(() => {});
      throw e;
    }
    return {
      usersFile: cfg.usersFile,
      profilePath,
      profileYaml,
      link: encodeShareLink(profileYaml),
    };
  });
}

/**
 * Changes user `name` of the server in `dir` (limits, routes, disabled):
 * comments, the user's other keys and the other users are kept; the write
 * is atomic. A running server applies it within 2 s (it watches the file).
 * Resolves to the users file's path; throws `ConfigError` for an unknown
 * user or a value users.yml would refuse, `ProvisionInputError` for a bad
 * route pattern.
 *
 * @example
 * ```ts
 * import { addUser, initServerDir, listUsers, setUser } from "./mod.ts";
 * const dir = await Deno.makeTempDir();
 * await initServerDir(dir);
 * await addUser("alice", { dir, out: `${dir}/alice.yml`, server: "127.0.0.1:8443" });
 * await setUser("alice", dir, { disabled: true, bandwidth: "1MB/s" });
 * console.log((await listUsers(dir))[0]?.disabled); // true
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function setUser(name: string, dir: string, changes: UserChanges): Promise<string> {
  checkUserName(name);
  for (const r of changes.routes ?? []) {
    try {
      parseRoute(r);
    } catch (e) {
      throw new ProvisionInputError(e instanceof Error ? e.message : String(e), { cause: e });
    }
  }
  const cfg = await loadServerConfig(join(dir, "server.yml"));
  await withLock(cfg.usersFile, async () => {
    const text = await Deno.readTextFile(cfg.usersFile);
    await replaceFile(cfg.usersFile, updateUserInYaml(text, cfg.usersFile, name, changes));
  });
  return cfg.usersFile;
}

/**
 * The users of the server in `dir`, in file order.
 *
 * @example
 * ```ts
 * import { initServerDir, listUsers } from "./mod.ts";
 * const dir = await Deno.makeTempDir();
 * await initServerDir(dir);
 * console.log((await listUsers(dir)).length); // 0
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function listUsers(dir: string): Promise<UserEntry[]> {
  const cfg = await loadServerConfig(join(dir, "server.yml"));
  return [...(await loadUsers(cfg.usersFile)).users.values()];
}

/**
 * Removes user `name` from the server in `dir` (comments kept, atomic
 * write); resolves to the users file's path.
 *
 * @example
 * ```ts
 * import { addUser, initServerDir, listUsers, removeUser } from "./mod.ts";
 * const dir = await Deno.makeTempDir();
 * await initServerDir(dir);
 * await addUser("alice", { dir, out: `${dir}/alice.yml`, server: "127.0.0.1:8443" });
 * await removeUser("alice", dir);
 * console.log((await listUsers(dir)).length); // 0
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function removeUser(name: string, dir: string): Promise<string> {
  checkUserName(name);
  const cfg = await loadServerConfig(join(dir, "server.yml"));
  await withLock(cfg.usersFile, async () => {
    const text = await Deno.readTextFile(cfg.usersFile);
    const out = removeUserFromYaml(text, cfg.usersFile, name);
    parseUsers(out, cfg.usersFile);
    await replaceFile(cfg.usersFile, out);
  });
  return cfg.usersFile;
}
