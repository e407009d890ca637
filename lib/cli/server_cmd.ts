/**
 * `nitrosocks server --config FILE`: runs the server until interrupted.
 *
 * @module
 */
import {
  type FileWatch,
  loadServerConfig,
  loadUsers,
  reloadUsersFile,
  watchFile,
} from "../config/mod.ts";
import { describeCryptoBackend } from "../record/mod.ts";
import { type ServerHandle, startServer } from "../tunnel/server.ts";
import { createLogger, describeError, type Logger } from "../observe/mod.ts";
import { logLevelFlag, parseFlags, stringFlag, UsageError } from "./args.ts";
import { useCryptoBackend } from "./crypto.ts";
import { warnIfExposed } from "./file_modes.ts";
import type { Command } from "./mod.ts";

const usage = `Usage: nitrosocks server --config FILE [--log-level LEVEL]

Runs a NitroSocks server from FILE (made by 'nitrosocks init DIR': DIR/server.yml).
Clients that prove the server key and their credentials get a tunnel; anything
else (browsers, scanners, replays) is handed to the fallback web site.

Options:
  --config FILE       server.yml to load (required)
  --log-level LEVEL   debug, info, warn or error (default: the file's log.level)
  -h, --help          show this help

Users: changes to users.yml apply within 2 s (the file is watched; SIGHUP also
reloads it). Users removed, disabled, expired or over quota lose their live
tunnels; a file that does not parse, or has no users: key (empty: caught
half-written), changes nothing and the log says where. With store.users: true
the users come from the fleet's Redis instead (changed with 'nitrosocks user'),
applied within 2 s on every server.
Signals: SIGHUP reloads users.yml; SIGINT/SIGTERM stop.`;

/**
 * Re-reads the users file and gives the server the new users; live sessions
 * keep running. A file that does not parse or has no `users:` key changes
 * nothing (ConfigError, see `reloadUsersFile`).
 *
 * @example
 * ```ts ignore
 * Deno.addSignalListener("SIGHUP", () => reloadUsers(server, config.usersFile, log));
 * ```
 */
export async function reloadUsers(server: ServerHandle, file: string, log: Logger): Promise<void> {
  const { users } = await reloadUsersFile(file);
  server.setUsers(users);
  log.info(`reloaded ${users.size} users from ${file}`);
}

/**
 * Reloads the users whenever `file` changes (written, or replaced by a
 * rename); a file that does not parse is logged with its line and column
 * and changes nothing.
 *
 * @example
 * ```ts ignore
 * const watch = watchUsers(server, config.usersFile, log);
 * watch.close();
 * ```
 */
export function watchUsers(server: ServerHandle, file: string, log: Logger): FileWatch {
  return watchFile(file, () => {
    reloadUsers(server, file, log).catch((e) =>
      log.error(`users.yml not reloaded: ${describeError(e)}`)
    );
  }, { onError: (e) => log.warn(`no longer watching ${file}: ${describeError(e)}`) });
}

export const serverCommand: Command = {
  name: "server",
  summary: "run a NitroSocks server",
  usage,
  async run(args) {
    const p = parseFlags(args, { config: { type: "string" }, "log-level": { type: "string" } });
    if (p.positionals.length > 0) throw new UsageError(`Unexpected argument "${p.positionals[0]}"`);
    const file = stringFlag(p, "config");
    if (file === undefined) {
      throw new UsageError("Missing --config FILE (e.g. --config ./srv/server.yml)");
    }
    const config = await loadServerConfig(file);
    const level = logLevelFlag(p, config.log.level);
    const log = createLogger(level, "server");
    await warnIfExposed(config.identityFile, "the server's private key", log);
    await warnIfExposed(config.usersFile, "the users' tokens and verifiers", log);
    if (config.tlsFiles !== undefined) {
      await warnIfExposed(config.tlsFiles.key, "the TLS certificate's private key", log);
    }
    const backend = useCryptoBackend(config.crypto);
    log.info(`crypto backend: ${describeCryptoBackend(backend)}`);
    const { users } = await loadUsers(config.usersFile);
    const server = await startServer({ ...config, users, log });
    // store.users: the server follows the fleet's store, not users.yml.
    const fromStore = config.store.kind === "redis" && config.store.users;
    const watch = fromStore ? undefined : watchUsers(server, config.usersFile, log);
    let closing: Promise<void> | undefined;
    const stop = () => {
      log.info("stopping");
      watch?.close();
      closing ??= server.close();
    };
    const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
    for (const s of signals) Deno.addSignalListener(s, stop);
    if (Deno.build.os !== "windows") {
      Deno.addSignalListener("SIGHUP", () => {
        if (fromStore) {
          log.info("users come from the fleet's store (store.users): nothing to reload");
          return;
        }
        reloadUsers(server, config.usersFile, log).catch((e) =>
          log.error(`users.yml not reloaded: ${describeError(e)}`)
        );
      });
    }
    await server.done;
    // The counters are written to the state file as the server closes: wait for it.
    await closing;
    return 0;
  },
};
