/**
 * Reading the PROXY protocol v2 header a TCP front (HAProxy with
 * `send-proxy-v2`) sends before the client's bytes, so the server sees the
 * real client address. Only where the server's configuration turns it on
 * (`proxy_protocol: true`): a connection without a valid header is refused,
 * with every byte it sent, as a probe. The parser is
 * `lib/fronting/proxy_v2.ts`.
 *
 * @module
 */
import { MAX_PROXY_V2_BODY, parseProxyV2, PROXY_V2_FIXED } from "../fronting/mod.ts";
import { PrefixedConn, readPrefix } from "./_prepared.ts";
import type { TransportConn } from "./registry.ts";

/** How long a front has to deliver the whole header (it sends it at once). */
export const PROXY_HEADER_DEADLINE_MS = 5_000;

/**
 * Reads the header from an accepted connection. Resolves with a
 * connection whose `remoteAddr` is the header's source address (the socket's
 * own for LOCAL and unspecified families) and whose reads start after the
 * header; or, when the header is missing, malformed, late or cut off, with
 * the connection `refused` and its bytes still to be read.
 *
 * @example
 * ```ts ignore
 * const conn = await acceptProxyV2(accepted);
 * conn.refused ?? conn.remoteAddr; // why it was refused, or the client's address
 * ```
 */
export async function acceptProxyV2(
  conn: TransportConn,
  deadlineMs: number = PROXY_HEADER_DEADLINE_MS,
): Promise<TransportConn> {
  let verdict: ReturnType<typeof parseProxyV2> = { type: "partial" };
  const prefix = await readPrefix(conn, (b) => {
    verdict = parseProxyV2(b);
    return verdict.type === "partial" ? "more" : "done";
  }, { max: PROXY_V2_FIXED + MAX_PROXY_V2_BODY, deadlineMs });
  const v = verdict as ReturnType<typeof parseProxyV2>;
  if (prefix.end === "done" && v.type === "header") {
    const rest = prefix.bytes.subarray(v.size);
    if (v.source === undefined) return new PrefixedConn(conn, rest);
    return new PrefixedConn(conn, rest, {
      remoteAddr: { transport: "tcp", hostname: v.source.hostname, port: v.source.port },
    });
  }
  const why = v.type === "invalid"
    ? v.reason
    : prefix.end === "timeout"
    ? "no complete header in time"
    : "closed before a complete header";
  return new PrefixedConn(conn, prefix, { refused: `PROXY v2: ${why}` });
}
