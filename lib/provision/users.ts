/**
 * `user add|list|remove`: manages `users.yml` in a server directory,
 * keeping its comments and other users, and writes each new user's client
 * profile and share link.
 *
 * @module
 */
import { signJwt } from "../crypto/jwt.ts";
import {
  SCRAM_DEFAULT_ITERATIONS,
  SCRAM_SALT_BYTES,
  type ScramVerifier,
  scramVerifier,
} from "../crypto/scram.ts";
import { basename, dirname, join } from "node:path";
import { ctEqual, randomBytes } from "../crypto/mod.ts";
import {
  addUserToYaml,
  certificateHashes,
  type ClientProfileFields,
  encodeShareLink,
  formatClientProfile,
  loadServerConfig,
  parseClientConfig,
  parseRoute,
  parseServerUrl,
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
import { certificateNames, issueClientCert } from "../pki/mod.ts";
import {
  type HostPort,
  invalidHostPortMessage,
  isIpAddress,
  parseHostPort,
} from "../wire/host_port.ts";
import { exists, writeNewFile } from "./_files.ts";
import { editUsersText, readUsers, usersInStore, usersPlace } from "./_users_place.ts";
import { ProvisionInputError } from "./errors.ts";

/** Options for {@link addUser}. */
export interface AddUserOptions {
  /** Server directory holding server.yml. */
  dir: string;
  /** Profile path; default `./NAME.yml`. */
  out?: string;
  /**
   * HOST:PORT clients connect to; default the listen address, or for a
   * wildcard one the certificate's name at the listen port (see
   * {@link clientAddress}).
   */
  server?: string;
  /**
   * The way in as a URL (`wss://cdn.example/ws`, `tls://host:443`), e.g.
   * through a front; instead of `server`. Default: the server's own
   * transport at `server`.
   */
  url?: string;
  /** Route patterns; default ["*"]. */
  routes?: string[];
  /** Also require a TOTP code. */
  totp?: boolean;
  /**
   * Log in with this password (SCRAM-SHA-256) instead of a token: users.yml
   * gets a fresh salt, the iteration count, StoredKey and ServerKey (never
   * the password); the profile gets the salt and count, not the password.
   */
  password?: string;
  /** PBKDF2 iterations for `password`; default `SCRAM_DEFAULT_ITERATIONS` (600 000). */
  iterations?: number;
  /**
   * Log in with a JWT instead of a token: `secret` makes a fresh HS256 secret
   * for this user (kept in users.yml, returned once as `jwtSecret`, and used
   * to write a first token), `publicKey` names an Ed25519 key whose tokens
   * the server accepts; with neither, the server-wide `auth.jwt` keys verify
   * the user's tokens. The profile reads its token from `jwtFile`.
   */
  jwt?: { secret?: boolean; publicKey?: Uint8Array };
  /** Lifetime of the first token written with `jwt.secret` (s); default 86 400. */
  jwtTtlS?: number;
  /**
   * Also issue a TLS client certificate for the user (CN = name) from the
   * server directory's CA (`tls/ca.crt`, `tls/ca.key`), for a server whose
   * `tls.client_ca` is that CA; it goes into the profile.
   */
  clientCert?: boolean;
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
  /**
   * The users file the user was added to, or, with `store.users`, the
   * fleet's store (`the fleet's users in redis://… (PREFIX users)`).
   */
  usersFile: string;
  /** True when the user went to the fleet's store (`store.users`), not to users.yml. */
  inStore: boolean;
  /** Where the client profile was written. */
  profilePath: string;
  /** The client profile's text. */
  profileYaml: string;
  /** The profile as a `nitrosocks://` share link (secret: it holds the user's keys). */
  link: string;
  /** The address clients dial, and why it was chosen. */
  dial: ClientAddress;
  /**
   * How the link carries the server's CA: by its SHA-256 (the server sends
   * the CA in its chain), whole (it does not: the link is longer), or not at
   * all (no private CA).
   */
  linkCa: "hash" | "whole" | "none";
  /** JWT users: the file the profile reads its token from (next to the profile). */
  jwtFile?: string;
  /** JWT users with `jwt.secret`: the new HS256 secret, for whoever issues the user's tokens. */
  jwtSecret?: Uint8Array;
}

/** The address a profile tells clients to dial, and why (`user add` prints both). */
export interface ClientAddress {
  server: HostPort;
  /** "--url", "--server", or how it follows from server.yml and the certificate. */
  reason: string;
}

/**
 * The address clients dial when `user add` is given neither `--server` nor
 * `--url`: the listen address when it names one host; for a wildcard listen
 * address (0.0.0.0, ::), the certificate's name (`init --name`) at the
 * listen port, since that is the name clients can resolve; loopback only
 * when the certificate names nothing else (`localhost`), and then the
 * reason says so.
 *
 * @example
 * ```ts
 * import { clientAddress } from "./users.ts";
 * clientAddress({ host: "0.0.0.0", port: 8443 }, "vpn.example.org").server;
 * // { host: "vpn.example.org", port: 8443 }
 * ```
 */
export function clientAddress(listen: HostPort, certName: string | undefined): ClientAddress {
  const wildcard = listen.host === "0.0.0.0" || listen.host === "::";
  if (!wildcard) return { server: listen, reason: "server.yml's listen address" };
  if (certName !== undefined && certName !== "localhost" && !certName.startsWith("*")) {
    return {
      server: { host: certName, port: listen.port },
      reason: `the certificate's name (init --name) and server.yml's listen port; ` +
        "pass --server HOST:PORT for another address",
    };
  }
  return {
    server: { host: listen.host === "::" ? "::1" : "127.0.0.1", port: listen.port },
    reason:
      `server.yml listens on ${listen.host} and the certificate names no host but localhost: ` +
      "this reaches the server from this machine only; pass --server HOST:PORT " +
      "(or init --name NAME) for clients elsewhere",
  };
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
  const jwtKeys = cfg.auth.jwt.secrets.length + cfg.auth.jwt.publicKeys.length;
  if (opts.jwt !== undefined && !opts.jwt.secret && opts.jwt.publicKey === undefined && !jwtKeys) {
    // Nothing would verify the user's tokens: every login would fail.
    throw new ProvisionInputError(
      `Cannot add "${name}" with --jwt: ${cfg.file} has no auth.jwt keys to verify the ` +
        "user's tokens; add auth.jwt.secrets (HS256) or auth.jwt.public_keys (Ed25519) there, " +
        "or use --jwt-secret (a secret for this user) or --jwt-key KEY",
    );
  }
  let transport = cfg.transport;
  let path = cfg.ws?.path;
  // The server's own certificate, also when a front (nginx, a CDN) serves it for a ws server.
  const certPem = cfg.tls?.certPem ??
    await Deno.readTextFile(join(cfg.dir, "tls", "server.crt")).catch(() => undefined);
  const certName = certPem === undefined ? undefined : certificateNames(certPem).dnsNames[0];
  let dial: ClientAddress;
  if (opts.url !== undefined) {
    if (opts.server !== undefined) {
      throw new ProvisionInputError("--url and --server both name the way in: give one of them");
    }
    const u = parseServerUrl(opts.url);
    if (typeof u === "string") throw new ProvisionInputError(`Invalid --url: ${u}`);
    dial = { server: u.server, reason: "--url" };
    transport = u.transport;
    path = u.path;
  } else if (opts.server !== undefined) {
    const hp = parseHostPort(opts.server);
    if (hp === undefined) {
      throw new ProvisionInputError(invalidHostPortMessage(opts.server, "server address"));
    }
    dial = { server: hp, reason: "--server" };
  } else {
    dial = clientAddress(cfg.listen, certName);
  }
  const server = dial.server;
  if (server.port === 0) {
    throw new ProvisionInputError("the server listens on port 0; pass --server HOST:PORT");
  }

  let serverName = server.host;
  let caPem: string | undefined;
  if (transport === "tls" || transport === "wss") {
    if (certName !== undefined && isIpAddress(server.host)) serverName = certName;
    const caPath = join(cfg.dir, "tls", "ca.crt");
    if (await exists(caPath)) caPem = await Deno.readTextFile(caPath);
  }
  // The link may name the CA by its hash when the server itself sends it in its TLS chain.
  const caHash = caPem === undefined ? undefined : certificateHashes(caPem);
  const caInChain = transport === "tls" && certPem !== undefined && caHash?.length === 1 &&
    certificateHashes(certPem).slice(1).some((h) => ctEqual(h, caHash[0]!));

  let tlsClient: { certPem: string; keyPem: string } | undefined;
  if (opts.clientCert) {
    const caCrt = join(cfg.dir, "tls", "ca.crt");
    const caKey = join(cfg.dir, "tls", "ca.key");
    const clientCa = cfg.tls?.clientCaPem;
    if (clientCa === undefined || !(await exists(caCrt)) || !(await exists(caKey))) {
      throw new ProvisionInputError(
        "--client-cert needs tls.client_ca in server.yml and the CA that init wrote " +
          `(${caCrt}, ${caKey})`,
      );
    }
    const ca = { certPem: await Deno.readTextFile(caCrt), keyPem: await Deno.readTextFile(caKey) };
    if (clientCa.trim() !== ca.certPem.trim()) {
      throw new ProvisionInputError(
        `--client-cert issues from ${caCrt}, but tls.client_ca names another CA: ` +
          "issue the certificate with that CA instead",
      );
    }
    tlsClient = await issueClientCert(ca, name);
  }

  const profilePath = opts.out ?? `${name}.yml`;
  if (!opts.force && await exists(profilePath)) {
    throw new Error(
      `Refusing to overwrite "${profilePath}": it already exists (use --force or --out FILE)`,
    );
  }

  let password: ScramVerifier | undefined;
  if (opts.password !== undefined) {
    try {
      password = await scramVerifier(
        opts.password,
        randomBytes(SCRAM_SALT_BYTES),
        opts.iterations ?? SCRAM_DEFAULT_ITERATIONS,
      );
    } catch (e) {
      throw new ProvisionInputError(e instanceof Error ? e.message : String(e), { cause: e });
    }
  }

  return await editUsersText(cfg, async (usersText, save) => {
    const client = generateClientKey();
    const token = password === undefined && opts.jwt === undefined ? generateToken() : undefined;
    const jwtSecret = opts.jwt?.secret ? randomBytes(32) : undefined;
    const jwt = opts.jwt === undefined ? undefined : {
      ...(jwtSecret === undefined ? {} : { secret: jwtSecret }),
      ...(opts.jwt.publicKey === undefined ? {} : { publicKey: opts.jwt.publicKey }),
    };
    const jwtFileName = `${basename(profilePath).replace(/\.ya?ml$/, "")}.jwt`;
    const jwtFile = join(dirname(profilePath), jwtFileName);
    const totpSecret = opts.totp ? randomBytes(20) : undefined;
    const newUsers = addUserToYaml(usersText, usersPlace(cfg), {
      name,
      publicKey: client.publicKey,
      ...(token === undefined ? {} : { token }),
      ...(password === undefined ? {} : { password }),
      ...(jwt === undefined ? {} : { jwt }),
      ...(totpSecret === undefined ? {} : { totpSecret }),
      routes,
      ...(opts.bandwidth === undefined ? {} : { bandwidth: opts.bandwidth }),
      ...(opts.quota === undefined ? {} : { quota: opts.quota }),
      ...(opts.maxTunnels === undefined ? {} : { maxTunnels: opts.maxTunnels }),
      ...(opts.maxStreams === undefined ? {} : { maxStreams: opts.maxStreams }),
      ...(opts.expires === undefined ? {} : { expires: opts.expires }),
    });
    const fields: ClientProfileFields = {
      server,
      serverName,
      transport,
      ...(path === undefined ? {} : { path }),
      serverKey: serverPublicKey(decodeServerIdentity(cfg.identity)),
      ...(caPem === undefined ? {} : { caPem }),
      user: name,
      key: client.privateKey,
      ...(token === undefined ? {} : { token }),
      ...(password === undefined
        ? {}
        : { password: { salt: password.salt, iterations: password.iterations } }),
      ...(jwt === undefined ? {} : { jwt: { file: jwtFileName } }),
      ...(totpSecret === undefined ? {} : { totpSecret }),
      ...(tlsClient === undefined ? {} : { tlsClient }),
    };
    const profileYaml = formatClientProfile(fields);
    parseClientConfig(profileYaml, profilePath); // never hand out a profile that does not load

    await writeNewFile(profilePath, profileYaml, { overwrite: opts.force === true });
    if (jwtSecret !== undefined) {
      const first = signJwt({ alg: "HS256", secret: jwtSecret }, {
        sub: name,
        iat: Math.floor(Date.now() / 1000),
        exp: Math.floor(Date.now() / 1000) + (opts.jwtTtlS ?? 86_400),
      });
      await writeNewFile(jwtFile, `${first}\n`, { overwrite: true });
    }
    try {
      await save(newUsers);
    } catch (e) {
      await Deno.remove(profilePath).catch(() => {});
      throw e;
    }
    return {
      usersFile: usersPlace(cfg),
      inStore: usersInStore(cfg),
      profilePath,
      profileYaml,
      link: encodeShareLink(fields, { pinCa: caInChain }),
      dial,
      linkCa: caPem === undefined ? "none" : caInChain ? "hash" : "whole",
      ...(jwt === undefined ? {} : { jwtFile }),
      ...(jwtSecret === undefined ? {} : { jwtSecret }),
    };
  });
}

/** Options for {@link issueUserToken}. */
export interface IssueTokenOptions {
  /** Server directory holding server.yml. */
  dir: string;
  /** Lifetime (s); default 3600. */
  ttlS?: number;
  /** A `routes` claim narrowing the user's routes for sessions logged in with this token. */
  routes?: string[];
}

/**
 * Signs an HS256 JWT for JWT user `name` with the user's own secret, or
 * else the first `auth.jwt.secrets` entry of server.yml. Throws
 * `ProvisionInputError` for a user that does not log in with a JWT or when
 * the server holds no HS256 secret for them (EdDSA tokens are issued by
 * whoever holds the private key).
 *
 * @example
 * ```ts ignore
 * const token = await issueUserToken("dave", { dir: ".", ttlS: 3600 });
 * ```
 */
export async function issueUserToken(name: string, opts: IssueTokenOptions): Promise<string> {
  const cfg = await loadServerConfig(join(opts.dir, "server.yml"));
  const user = (await readUsers(cfg)).users.get(name);
  if (user === undefined) throw new ProvisionInputError(`No user "${name}" in ${usersPlace(cfg)}`);
  if (user.jwt === undefined) {
    throw new ProvisionInputError(
      `User "${name}" does not log in with a JWT: add them with "user add ${name} --jwt-secret"`,
    );
  }
  const secret = user.jwt.secret ?? cfg.auth.jwt.secrets[0];
  if (secret === undefined) {
    throw new ProvisionInputError(
      `No HS256 secret for "${name}": neither users.${name}.jwt.secret nor auth.jwt.secrets is set`,
    );
  }
  for (const r of opts.routes ?? []) {
    try {
      parseRoute(r);
    } catch (e) {
      throw new ProvisionInputError(e instanceof Error ? e.message : String(e), { cause: e });
    }
  }
  const now = Math.floor(Date.now() / 1000);
  const ttl = opts.ttlS ?? 3600;
  if (!(ttl >= 1)) throw new ProvisionInputError(`Invalid token lifetime ${ttl} s: at least 1 s`);
  return signJwt({ alg: "HS256", secret }, {
    sub: name,
    iat: now,
    exp: now + Math.ceil(ttl),
    ...(cfg.auth.jwt.audience === undefined ? {} : { aud: cfg.auth.jwt.audience }),
    ...(opts.routes === undefined ? {} : { routes: opts.routes }),
  });
}

/**
 * Changes user `name` of the server in `dir` (limits, routes, disabled, and
 * a password user's password: re-derived with the salt and iteration count
 * users.yml holds, so the user's profile stays valid):
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
export async function setUser(
  name: string,
  dir: string,
  changes: UserChanges & { password?: string },
): Promise<string> {
  checkUserName(name);
  const { password, ...rest } = changes;
  for (const r of changes.routes ?? []) {
    try {
      parseRoute(r);
    } catch (e) {
      throw new ProvisionInputError(e instanceof Error ? e.message : String(e), { cause: e });
    }
  }
  const cfg = await loadServerConfig(join(dir, "server.yml"));
  const place = usersPlace(cfg);
  await editUsersText(cfg, async (text, save) => {
    let edit: UserChanges = rest;
    if (password !== undefined) {
      const current = parseUsers(text, place).users.get(name)?.password;
      if (current === undefined) {
        throw new ProvisionInputError(
          `User "${name}" does not log in with a password (or is not in ${place}): ` +
            `remove the user and run "nitrosocks user add ${name} --password"`,
        );
      }
      // The salt and iteration count stay: every copy of the user's profile carries them,
      // so the profile keeps working and only the password the client is given changes.
      const v = await scramVerifier(password, current.salt, current.iterations).catch((e) => {
        throw new ProvisionInputError(e instanceof Error ? e.message : String(e), { cause: e });
      });
      edit = { ...rest, passwordKeys: { storedKey: v.storedKey, serverKey: v.serverKey } };
    }
    await save(updateUserInYaml(text, place, name, edit));
  });
  return place;
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
  return [...(await readUsers(cfg)).users.values()];
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
  const place = usersPlace(cfg);
  await editUsersText(cfg, async (text, save) => {
    const out = removeUserFromYaml(text, place, name);
    parseUsers(out, place);
    await save(out);
  });
  return place;
}
