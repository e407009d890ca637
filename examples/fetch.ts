/**
 * Fetches a page through a NitroSocks tunnel and writes its body to stdout:
 *
 * ```sh
 * deno run --allow-net --allow-read=alice.yml --allow-env=LOG_TOKENS,LOG_STREAM \
 *   examples/fetch.ts --profile alice.yml http://example.com/
 * ```
 *
 * The library in a few lines: `connect()` with the profile `nitrosocks user
 * add` wrote, `tunnel.dial()` the web server (the server reaches it, under
 * the user's routes), then plain HTTP/1.1 over the connection. One GET
 * with `Connection: close`; a chunked body is decoded. `http://` only: TLS
 * to the target would need a TLS client over the connection. Exit status:
 * 0 for a 2xx answer, 1 for any other answer or failure (said on stderr),
 * 2 for a usage error.
 *
 * @module
 */
import { connect, type TunnelConn } from "../mod.ts";

const USAGE = "Usage: examples/fetch.ts --profile FILE [--timeout SECONDS] http://HOST[:PORT]/PATH";
/** Longest response head accepted. */
const MAX_HEAD_BYTES = 64 * 1024;

/** Bytes read from a connection, with the part not consumed yet. */
class Input {
  readonly #conn: TunnelConn;
  #buf = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;

  constructor(conn: TunnelConn) {
    this.#conn = conn;
  }

  /** Bytes read but not consumed. */
  get buffered(): Uint8Array {
    return this.#buf.subarray(this.#start, this.#end);
  }

  consume(n: number): void {
    this.#start += n;
  }

  /** Reads more; false at the end of the stream. */
  async fill(): Promise<boolean> {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    if (this.#end === this.#buf.length) {
      if (this.#start > 0) {
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      } else {
        const bigger = new Uint8Array(this.#buf.length * 2);
        bigger.set(this.#buf);
        this.#buf = bigger;
      }
    }
    const n = await this.#conn.read(this.#buf.subarray(this.#end));
    if (n === null) return false;
    this.#end += n;
    return true;
  }

  /** The next line without its CRLF (at most `max` bytes). */
  async line(max = 8 * 1024): Promise<string> {
    for (;;) {
      const b = this.buffered;
      const i = b.indexOf(0x0a);
      if (i >= 0) {
        this.consume(i + 1);
        return new TextDecoder().decode(b.subarray(0, i > 0 && b[i - 1] === 0x0d ? i - 1 : i));
      }
      if (b.length > max) throw new Error(`Line longer than ${max} bytes`);
      if (!(await this.fill())) throw new Error("Connection closed in the middle of a line");
    }
  }

  /** Copies `n` bytes (or all until the end when `n` is undefined) to `out`. */
  async copy(n: number | undefined, out: WritableStreamDefaultWriter<Uint8Array>): Promise<void> {
    let left = n ?? Infinity;
    while (left > 0) {
      if (this.buffered.length === 0 && !(await this.fill())) {
        if (n === undefined) return;
        throw new Error(`Connection closed ${left} bytes before the end of the body`);
      }
      const b = this.buffered;
      const k = Math.min(b.length, left);
      await out.write(b.slice(0, k));
      this.consume(k);
      left -= k;
    }
  }
}

/** Reads the status line and headers. */
async function readHead(input: Input): Promise<{ status: number; headers: Map<string, string> }> {
  const statusLine = await input.line();
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
  if (m === null) throw new Error(`Not an HTTP response: ${JSON.stringify(statusLine)}`);
  const headers = new Map<string, string>();
  let size = statusLine.length;
  for (;;) {
    const l = await input.line();
    if (l === "") break;
    size += l.length;
    if (size > MAX_HEAD_BYTES) throw new Error(`Response head longer than ${MAX_HEAD_BYTES} bytes`);
    const colon = l.indexOf(":");
    if (colon > 0) headers.set(l.slice(0, colon).trim().toLowerCase(), l.slice(colon + 1).trim());
  }
  return { status: Number(m[1]), headers };
}

/** Copies a body in chunked transfer coding (RFC 9112 section 7.1), decoded. */
async function copyChunked(input: Input, out: WritableStreamDefaultWriter<Uint8Array>) {
  for (;;) {
    const size = parseInt((await input.line()).split(";")[0]!, 16);
    if (!Number.isInteger(size) || size < 0) throw new Error("Malformed chunk size");
    if (size === 0) break;
    await input.copy(size, out);
    if ((await input.line()) !== "") throw new Error("Malformed chunk end");
  }
  while ((await input.line()) !== ""); // trailer fields
}

function usage(message: string): number {
  console.error(`${message}\n${USAGE}`);
  return 2;
}

async function main(args: string[]): Promise<number> {
  let profile: string | undefined;
  let timeoutS = 60;
  let target: string | undefined;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "--profile") profile = args[++i];
    else if (a === "--timeout") timeoutS = Number(args[++i]);
    else if (a.startsWith("-")) return usage(`Unknown option ${a}`);
    else if (target === undefined) target = a;
    else return usage(`Unexpected argument ${a}`);
  }
  if (profile === undefined) return usage("Missing --profile FILE");
  if (target === undefined) return usage("Missing the URL to fetch");
  if (!(timeoutS > 0)) return usage("--timeout must be a number of seconds above 0");
  let url: URL;
  try {
    url = new URL(target);
  } catch {
    return usage(`Invalid URL ${JSON.stringify(target)}`);
  }
  if (url.protocol !== "http:") {
    return usage(`Only http:// URLs are supported, not ${url.protocol}`);
  }

  // The whole fetch gives up after the timeout: aborting closes the tunnel.
  const signal = AbortSignal.timeout(timeoutS * 1000);
  await using tunnel = await connect(profile, { signal });
  const hostname = url.hostname.replace(/^\[(.*)\]$/, "$1");
  using conn = await tunnel.dial({ hostname, port: Number(url.port || 80), signal });
  const request = `GET ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n` +
    `User-Agent: nitrosocks-fetch-example\r\nAccept: */*\r\nConnection: close\r\n\r\n`;
  await conn.write(new TextEncoder().encode(request));

  const input = new Input(conn);
  const { status, headers } = await readHead(input);
  const out = Deno.stdout.writable.getWriter();
  try {
    if (/\bchunked\b/i.test(headers.get("transfer-encoding") ?? "")) {
      await copyChunked(input, out);
    } else {
      const length = headers.get("content-length");
      await input.copy(length === undefined ? undefined : Number(length), out);
    }
  } finally {
    out.releaseLock();
  }
  if (status < 200 || status > 299) {
    console.error(`${url.href}: HTTP status ${status}`);
    return 1;
  }
  return 0;
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (e) {
    console.error(`fetch: ${e instanceof Error ? e.message : String(e)}`);
    code = 1;
  }
  Deno.exit(code);
}
