/**
 * The connection to the fleet's Redis (`store.url` in server.yml): one
 * client for commands and one for the kick channel, each reconnecting on
 * its own. Commands never wait for a connection: while Redis is down they
 * fail at once (no offline queue), and every command has a deadline
 * ({@linkcode COMMAND_TIMEOUT_MS}), so a server never stalls a login on an
 * unreachable store; the callers decide per limit what a failure means
 * (`fleet.ts`).
 *
 * @module
 */
import { createClient } from "@redis/client";

/** The longest a command may take before it counts as failed (ms). */
export const COMMAND_TIMEOUT_MS = 500;
/** The longest wait between two reconnection attempts (ms). */
const MAX_RECONNECT_DELAY_MS = 500;

/** Options for {@linkcode RedisLink.connect}. */
export interface RedisLinkOptions {
  /** `redis://HOST:PORT[/DB]`. */
  url: string;
  /** AUTH password; never logged. */
  password?: string;
  /** `rediss://`: CA certificate(s) (PEM) Redis's certificate must chain to; default the system's. */
  tlsCaPem?: string;
  /** Told each time the command connection comes up or goes down. */
  onState?: (up: boolean, detail: string) => void;
}

function newClient(options: RedisLinkOptions) {
  return createClient({
    url: options.url,
    ...(options.password === undefined ? {} : { password: options.password }),
    disableOfflineQueue: true,
    // Redis Enterprise maintenance hints are not used (and their debug switch reads the environment).
    maintNotifications: "disabled",
    socket: {
      ...(options.url.startsWith("rediss://")
        ? {
          tls: true as const,
          ...(options.tlsCaPem === undefined ? {} : { ca: [options.tlsCaPem] }),
        }
        : {}),
      connectTimeout: 2_000,
      reconnectStrategy: (retries: number) => Math.min(50 * (retries + 1), MAX_RECONNECT_DELAY_MS),
    },
  });
}

type Client = ReturnType<typeof newClient>;

/** Why a command failed: Redis down, too slow, or an error reply. */
export class StoreUnavailableError extends Error {
  constructor(detail: string, options?: ErrorOptions) {
    super(`Shared store unavailable: ${detail}`, options);
    this.name = "StoreUnavailableError";
  }
}

function describe(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/**
 * The two connections to Redis.
 *
 * @example
 * ```ts ignore
 * const link = await RedisLink.connect({ url: "redis://127.0.0.1:6379" });
 * await link.run((c) => c.set("k", "v"));
 * await link.close();
 * ```
 */
export class RedisLink {
  readonly #cmd: Client;
  readonly #sub: Client;
  readonly #onState: (up: boolean, detail: string) => void;
  #up = false;
  #closed = false;

  private constructor(cmd: Client, sub: Client, onState: (up: boolean, detail: string) => void) {
    this.#cmd = cmd;
    this.#sub = sub;
    this.#onState = onState;
  }

  /**
   * Connects both clients. Resolves once the command connection is up;
   * rejects with {@linkcode StoreUnavailableError} when it cannot be made
   * within `timeoutMs` (a server must not start without its store: the
   * replay cache would be missing).
   */
  static async connect(options: RedisLinkOptions, timeoutMs = 5_000): Promise<RedisLink> {
    const cmd = newClient(options);
    const sub = newClient(options);
    const link = new RedisLink(cmd, sub, options.onState ?? (() => {}));
    let lastError = "";
    // A refused password or certificate will not get better by retrying: connect() fails at once.
    let refused: (e: Error) => void = () => {};
    const authRefused = new Promise<never>((_, reject) => refused = reject);
    authRefused.catch(() => {}); // settled by the race below, or never looked at after it
    for (const c of [cmd, sub]) {
      c.on("error", (e: unknown) => {
        lastError = describe(e);
        if (c === cmd) link.#set(false, lastError);
        if (
          /WRONGPASS|NOAUTH|invalid password|AUTH failed|certificate|self.signed/i.test(lastError)
        ) {
          refused(new StoreUnavailableError(`cannot connect to ${options.url}: ${lastError}`));
        }
      });
    }
    cmd.on("ready", () => link.#set(true, "connected"));
    cmd.on("end", () => link.#set(false, "connection closed"));
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        Promise.all([cmd.connect(), sub.connect()]),
        authRefused,
        new Promise((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new StoreUnavailableError(
                  `cannot connect to ${options.url} within ${timeoutMs / 1000} s` +
                    (lastError === "" ? "" : `: ${lastError}`),
                ),
              ),
            timeoutMs,
          );
        }),
      ]);
    } catch (e) {
      await link.close();
      throw e instanceof StoreUnavailableError
        ? e
        : new StoreUnavailableError(`cannot connect to ${options.url}: ${describe(e)}`, {
          cause: e,
        });
    } finally {
      clearTimeout(timer);
    }
    return link;
  }

  /** True while the command connection is up. */
  get up(): boolean {
    return this.#up;
  }

  #set(up: boolean, detail: string): void {
    if (this.#closed || up === this.#up) return;
    this.#up = up;
    this.#onState(up, detail);
  }

  /**
   * Runs `fn` on the command client within {@linkcode COMMAND_TIMEOUT_MS};
   * any failure rejects with {@linkcode StoreUnavailableError}.
   */
  async run<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    if (this.#closed) throw new StoreUnavailableError("the store is closed");
    if (!this.#up) throw new StoreUnavailableError("not connected");
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        fn(this.#cmd),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new StoreUnavailableError(`no answer within ${COMMAND_TIMEOUT_MS} ms`)),
            COMMAND_TIMEOUT_MS,
          );
        }),
      ]);
    } catch (e) {
      if (e instanceof StoreUnavailableError) throw e;
      throw new StoreUnavailableError(describe(e), { cause: e });
    } finally {
      clearTimeout(timer);
    }
  }

  /** Delivers every message published on `channel` to `onMessage` (resubscribed after outages). */
  async subscribe(channel: string, onMessage: (message: string) => void): Promise<void> {
    await this.#sub.subscribe(channel, (m: string) => onMessage(m));
  }

  /** Closes both connections. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const c of [this.#sub, this.#cmd]) {
      try {
        if (c.isOpen) await c.close();
        else c.destroy();
      } catch {
        c.destroy();
      }
    }
  }
}
