/**
 * A direct (no tunnel) SOCKS5 or HTTP CONNECT proxy built from
 * `lib/socks5` and `lib/transport`: the reference for how the edges are
 * meant to be driven, and a baseline to compare the tunnel with.
 *
 * Exports:
 * - `startDirectProxy(opts)` → `DirectProxy` `{ hostname, port, requests,
 *   outcomes, close() }`. `mode: "socks5"` or `"http"`; optional `auth`
 *   (users), `allow(request)` policy (refused → reply 2 / HTTP 403),
 *   `handshakeTimeoutMs` (default 10 s), `dialTimeoutMs` (default 10 s).
 *   `requests` lists accepted requests; `outcomes` the reply code per request.
 *
 * @example
 * ```ts ignore
 * import { startDirectProxy } from "./direct_proxy.ts";
 * import { socksConnect } from "./socks_client.ts";
 * await using proxy = startDirectProxy({ mode: "socks5" });
 * const conn = await socksConnect(proxy.port, "127.0.0.1", target.port);
 * ```
 *
 * @module
 */
import {
  encodeReply,
  HttpConnectParser,
  httpConnectResponse,
  type HttpConnectStep,
  Reply,
  replyForError,
  type Socks5Auth,
  type Socks5Request,
  Socks5ServerHandshake,
  type Socks5Step,
} from "../../lib/socks5/mod.ts";
import { dialTcp } from "../../lib/transport/mod.ts";
import { closeQuietly, splice, writeAll } from "./io.ts";
import { serveConnections, type Track } from "./serve.ts";

/** Options for {@linkcode startDirectProxy}. */
export interface DirectProxyOptions {
  mode: "socks5" | "http";
  auth?: Socks5Auth;
  /** Listen address, default "127.0.0.1". */
  hostname?: string;
  /** Policy: return false to refuse a destination (reply 2, HTTP 403). */
  allow?: (request: Socks5Request) => boolean;
  handshakeTimeoutMs?: number;
  dialTimeoutMs?: number;
}

/** A running direct proxy. */
export interface DirectProxy extends AsyncDisposable {
  readonly hostname: string;
  readonly port: number;
  readonly requests: Socks5Request[];
  /** Reply code sent for each request, in order. */
  readonly outcomes: number[];
  close(): Promise<void>;
}

type Step = Socks5Step | HttpConnectStep;

/**
 * Starts the proxy on an ephemeral port.
 *
 * @example
 * ```ts ignore
 * import { startDirectProxy } from "./direct_proxy.ts";
 * const proxy = startDirectProxy({ mode: "http", auth: { users: new Map([["u", "p"]]) } });
 * await proxy.close();
 * ```
 */
export function startDirectProxy(opts: DirectProxyOptions): DirectProxy {
  const requests: Socks5Request[] = [];
  const outcomes: number[] = [];
  const handle = async (client: Deno.Conn, track: Track) => {
    const hs = opts.mode === "socks5"
      ? new Socks5ServerHandshake(opts.auth)
      : new HttpConnectParser(opts.auth === undefined ? {} : { auth: opts.auth });
    const timer = setTimeout(() => closeQuietly(client), opts.handshakeTimeoutMs ?? 10_000);
    try {
      const buf = new Uint8Array(16384);
      let step: Step = { type: "need_more" };
      while (step.type === "need_more" || step.type === "send") {
        const n = await client.read(buf);
        step = n === null ? hs.end() : hs.push(buf.subarray(0, n));
        if (step.type === "send") await writeAll(client, step.bytes);
      }
      clearTimeout(timer);
      if (step.type === "fail") {
        await writeAll(client, step.send);
        return;
      }
      if (step.type === "local") return; // no localPaths here: never
      if ("send" in step && step.send !== undefined) await writeAll(client, step.send);
      const request = step.request;
      requests.push(request);
      const respond = (reply: number, bind?: { host: string; port: number }) => {
        outcomes.push(reply);
        return writeAll(
          client,
          opts.mode === "socks5" ? encodeReply(reply, bind) : httpConnectResponse(reply),
        );
      };
      if (opts.allow !== undefined && !opts.allow(request)) {
        await respond(Reply.NOT_ALLOWED);
        return;
      }
      let target: Deno.TcpConn;
      try {
        target = await dialTcp({
          hostname: request.host,
          port: request.port,
          timeoutMs: opts.dialTimeoutMs ?? 10_000,
        });
      } catch (e) {
        await respond(replyForError(e));
        return;
      }
      const untrack = track(target);
      try {
        const local = target.localAddr as Deno.NetAddr;
        await respond(Reply.SUCCEEDED, { host: local.hostname, port: local.port });
        if (step.rest.length > 0) await writeAll(target, step.rest);
        await splice(client, target);
      } finally {
        closeQuietly(target);
        untrack();
      }
    } catch {
      // Client went away or timed out.
    } finally {
      clearTimeout(timer);
    }
  };
  const served = serveConnections(
    Deno.listen({ hostname: opts.hostname ?? "127.0.0.1", port: 0 }),
    handle,
  );
  return {
    hostname: served.hostname,
    port: served.port,
    requests,
    outcomes,
    close: served.close,
    [Symbol.asyncDispose]: served.close,
  };
}
