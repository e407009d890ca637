/**
 * The operator's side of the admin listener: fetch `/status`, ask for a
 * kick, with the bearer token, and errors that say what to do.
 *
 * @module
 */
import type { HostPort } from "../config/mod.ts";
import type { KickReport, StatusReport } from "./types.ts";

/** Where the admin listener is and the token it wants (server.yml's `admin:`). */
export interface AdminTarget {
  listen: HostPort;
  token?: string;
}

/** Options for the requests. */
export interface AdminRequestOptions {
  /** Give up after this long (ms). Default 10 000. */
  timeoutMs?: number;
}

/** The admin listener could not be reached or refused the request. */
export class AdminRequestError extends Error {
  /** The HTTP status, when the listener answered. */
  readonly status: number | undefined;

  constructor(message: string, status?: number, options?: ErrorOptions) {
    super(message, options);
    this.name = "AdminRequestError";
    this.status = status;
  }
}

/**
 * The URL of the admin listener at `listen`: a wildcard address
 * (`0.0.0.0`, `::`) is reached over loopback.
 *
 * @example
 * ```ts
 * import { adminUrl } from "./client.ts";
 * adminUrl({ host: "0.0.0.0", port: 9090 }); // "http://127.0.0.1:9090"
 * ```
 */
export function adminUrl(listen: HostPort): string {
  const host = listen.host === "0.0.0.0" ? "127.0.0.1" : listen.host === "::" ? "::1" : listen.host;
  return host.includes(":") ? `http://[${host}]:${listen.port}` : `http://${host}:${listen.port}`;
}

async function request(
  target: AdminTarget,
  method: string,
  path: string,
  options: AdminRequestOptions,
): Promise<unknown> {
  const base = adminUrl(target.listen);
  const headers: Record<string, string> = { accept: "application/json" };
  if (target.token !== undefined) headers.authorization = `Bearer ${target.token}`;
  const timeoutMs = options.timeoutMs ?? 10_000;
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, {
      method,
      headers,
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (e) {
    const cause = e instanceof Error && e.cause instanceof Error ? e.cause : e;
    const refused = cause instanceof Deno.errors.ConnectionRefused ||
      (cause instanceof Error && /connection refused/i.test(cause.message));
    const why = refused
      ? "connection refused (is the server running with this server.yml?)"
      : e instanceof DOMException && e.name === "TimeoutError"
      ? `no answer within ${timeoutMs / 1000} s`
      : cause instanceof Error
      ? cause.message
      : String(cause);
    throw new AdminRequestError(`Cannot reach the admin listener at ${base}: ${why}`, undefined, {
      cause: e,
    });
  }
  const body = await res.text();
  if (res.status === 401) {
    throw new AdminRequestError(
      `The admin listener at ${base} refused the request (401): ${
        target.token === undefined
          ? "it wants a bearer token, and admin.token is not set"
          : "admin.token does not match the running server's"
      }`,
      401,
    );
  }
  if (!res.ok) {
    throw new AdminRequestError(
      `The admin listener at ${base} answered ${res.status}: ${body.trim()}`,
      res.status,
    );
  }
  try {
    return JSON.parse(body);
  } catch {
    throw new AdminRequestError(`The admin listener at ${base} sent something that is not JSON`);
  }
}

/**
 * The live sessions, from `GET /status`.
 *
 * @example
 * ```ts ignore
 * const report = await fetchStatus({ listen: { host: "127.0.0.1", port: 9090 } });
 * for (const s of report.sessions) console.log(s.user, s.source);
 * ```
 */
export async function fetchStatus(
  target: AdminTarget,
  options: AdminRequestOptions = {},
): Promise<StatusReport> {
  return await request(target, "GET", "/status", options) as StatusReport;
}

/**
 * Ends `user`'s live sessions, with `POST /kick?user=NAME`.
 *
 * @example
 * ```ts ignore
 * const { sessions } = await kickUser({ listen: { host: "127.0.0.1", port: 9090 } }, "bob");
 * ```
 */
export async function kickUser(
  target: AdminTarget,
  user: string,
  options: AdminRequestOptions = {},
): Promise<KickReport> {
  const path = `/kick?user=${encodeURIComponent(user)}`;
  return await request(target, "POST", path, options) as KickReport;
}
