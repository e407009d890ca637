/**
 * The server side of the SOCKS5 handshake (RFC 1928 sections 3–4, RFC 1929)
 * as a push-based state machine: bytes in, steps out, no I/O.
 *
 * ```
 * greeting ──(method 0x00)──────────────► request ──► done
 *     └─────(method 0x02)──► auth ──ok──►    │
 * any state ──malformed / refused──► failed ◄┘
 * ```
 *
 * @module
 */
import { concat } from "../wire/bytes.ts";
import { checkCredentials, validateUsers } from "./_credentials.ts";
import {
  ATYP_DOMAIN,
  CMD_CONNECT,
  CMD_UDP_ASSOCIATE,
  decodeRequest,
  encodeReply,
  messageLength,
  type Socks5Request,
  SOCKS_VERSION,
} from "./message.ts";
import { Reply, Socks5Error } from "./reply.ts";

/** Method codes (RFC 1928 section 3). */
export const METHOD_NO_AUTH = 0x00;
/** METHOD: username/password (RFC 1929). */
export const METHOD_USERNAME_PASSWORD = 0x02;
/** METHOD: none of the offered methods is acceptable. */
export const METHOD_NO_ACCEPTABLE = 0xff;
/** Username/password sub-negotiation version (RFC 1929 section 2). */
export const AUTH_VERSION = 0x01;

/** Who may use the listener. */
export interface Socks5Auth {
  /**
   * Username → password. Absent: only method 0x00 (no authentication) is
   * offered. Present: only 0x02 (RFC 1929), passwords compared in constant
   * time; each name and password must be 1..255 UTF-8 bytes.
   */
  users?: Map<string, string>;
}

/** What the caller does next after {@linkcode Socks5ServerHandshake.push}. */
export type Socks5Step =
  /** Nothing to send yet; push more bytes. */
  | { type: "need_more" }
  /** Send `bytes` (method selection or auth status), then keep pushing. */
  | { type: "send"; bytes: Uint8Array }
  /**
   * A CONNECT request arrived. Send `send` first if present (a method
   * selection or auth status not yet sent), dial, then send a reply from
   * `encodeReply`. `raw` is the exact request VER..PORT; `rest` the bytes
   * that followed it (early data for the destination).
   */
  | {
    type: "request";
    request: Socks5Request;
    raw: Uint8Array;
    rest: Uint8Array;
    send?: Uint8Array;
  }
  /** Send `send` (may be empty), then close. */
  | { type: "fail"; send: Uint8Array; error: Socks5Error };

type State = "greeting" | "auth" | "request" | "done";

const NO_ACCEPTABLE = Uint8Array.of(SOCKS_VERSION, METHOD_NO_ACCEPTABLE);
const AUTH_OK = Uint8Array.of(AUTH_VERSION, 0x00);
const AUTH_FAILED = Uint8Array.of(AUTH_VERSION, 0x01);
const EMPTY = new Uint8Array(0);
const STATE_NAMES: Record<State, string> = {
  greeting: "method negotiation",
  auth: "username/password authentication",
  request: "request",
  done: "done",
};

function hex(b: number): string {
  return `0x${b.toString(16).padStart(2, "0")}`;
}

/**
 * The local SOCKS5 listener's handshake. Feed it every byte read from the
 * client; it never throws and never buffers more than one message
 * (at most 513 bytes) beyond the chunk just pushed. Only CONNECT is
 * accepted, and UDP ASSOCIATE when the caller says it serves it; BIND (and
 * otherwise UDP ASSOCIATE) get reply 7.
 *
 * Failures (each a `fail` step; the caller sends `send` and closes):
 * - greeting VER ≠ 5, NMETHODS = 0, or no acceptable method → `05 FF`
 * - RFC 1929 VER ≠ 1, empty username/password, unknown user or wrong
 *   password → `01 01` (all alike from outside)
 * - request VER ≠ 5 or RSV ≠ 0 or bad domain → reply 1; unknown or
 *   unsupported command → 7; unknown ATYP → 8
 *
 * @example
 * ```ts
 * import { Socks5ServerHandshake } from "./server.ts";
 * const hs = new Socks5ServerHandshake();
 * hs.push(new Uint8Array([5, 1, 0])); // { type: "send", bytes: [5, 0] }
 * const step = hs.push(new Uint8Array([5, 1, 0, 1, 127, 0, 0, 1, 0, 80]));
 * // step.type === "request", step.request.host === "127.0.0.1"
 * ```
 */
export class Socks5ServerHandshake {
  #users: Map<string, string> | undefined;
  #state: State = "greeting";
  #buf: Uint8Array = EMPTY;
  #pending: Uint8Array[] = [];

  #udp: boolean;

  /**
   * Throws `RangeError` if a configured username or password is not 1..255
   * bytes. With `options.udpAssociate`, UDP ASSOCIATE requests are returned
   * as requests too (the caller runs the association).
   */
  constructor(auth: Socks5Auth = {}, options: { udpAssociate?: boolean } = {}) {
    if (auth.users !== undefined) validateUsers(auth.users);
    this.#users = auth.users;
    this.#udp = options.udpAssociate === true;
  }

  /** True once a `request` or `fail` step was returned. */
  get done(): boolean {
    return this.#state === "done";
  }

  /** Feeds bytes read from the client. */
  push(chunk: Uint8Array): Socks5Step {
    if (this.#state === "done") {
      return this.#fail(
        EMPTY,
        Reply.GENERAL_FAILURE,
        "Cannot push to SOCKS5 handshake: already finished",
      );
    }
    this.#buf = this.#buf.length === 0 ? chunk : concat([this.#buf, chunk]);
    for (;;) {
      let step: Socks5Step | "more" | "next";
      switch (this.#state) {
        case "greeting":
          step = this.#greeting();
          break;
        case "auth":
          step = this.#auth();
          break;
        default:
          step = this.#request();
      }
      if (step === "next") continue;
      if (step !== "more") return step;
      // Keep only what is unparsed (under one message), as a copy: the
      // caller may reuse `chunk`.
      this.#buf = this.#buf.slice();
      if (this.#pending.length === 0) return { type: "need_more" };
      const bytes = concat(this.#pending);
      this.#pending = [];
      return { type: "send", bytes };
    }
  }

  /**
   * Reports end of input from the client: a `fail` step (nothing to send)
   * if the handshake was not complete.
   */
  end(): Socks5Step {
    if (this.#state === "done") {
      return this.#fail(
        EMPTY,
        Reply.GENERAL_FAILURE,
        "Cannot end SOCKS5 handshake: already finished",
      );
    }
    return this.#fail(
      EMPTY,
      Reply.GENERAL_FAILURE,
      `Cannot complete SOCKS5 handshake: connection closed during ${
        STATE_NAMES[this.#state]
      } after ${this.#buf.length} bytes`,
    );
  }

  #consume(n: number): void {
    this.#buf = this.#buf.subarray(n);
  }

  #fail(send: Uint8Array, reply: number, message: string): Socks5Step {
    this.#state = "done";
    const all = this.#pending.length === 0 ? send : concat([...this.#pending, send]);
    this.#pending = [];
    this.#buf = EMPTY;
    return { type: "fail", send: all, error: new Socks5Error(reply, message) };
  }

  /** RFC 1928 section 3: VER NMETHODS METHODS. */
  #greeting(): Socks5Step | "more" | "next" {
    const b = this.#buf;
    if (b.length < 1) return "more";
    if (b[0] !== SOCKS_VERSION) {
      return this.#fail(
        NO_ACCEPTABLE,
        Reply.GENERAL_FAILURE,
        `Cannot accept SOCKS5 greeting: version ${b[0]}, expected 5`,
      );
    }
    if (b.length < 2) return "more";
    const n = b[1]!;
    if (n === 0) {
      return this.#fail(
        NO_ACCEPTABLE,
        Reply.GENERAL_FAILURE,
        "Cannot accept SOCKS5 greeting: no methods offered",
      );
    }
    if (b.length < 2 + n) return "more";
    const offered = b.subarray(2, 2 + n);
    const want = this.#users === undefined ? METHOD_NO_AUTH : METHOD_USERNAME_PASSWORD;
    if (!offered.includes(want)) {
      const list = Array.from(offered, hex).join(", ");
      return this.#fail(
        NO_ACCEPTABLE,
        Reply.NOT_ALLOWED,
        `Cannot accept SOCKS5 greeting: no acceptable method among [${list}], need ${hex(want)}`,
      );
    }
    this.#consume(2 + n);
    this.#pending.push(Uint8Array.of(SOCKS_VERSION, want));
    this.#state = want === METHOD_NO_AUTH ? "request" : "auth";
    return "next";
  }

  /** RFC 1929 section 2: VER ULEN UNAME PLEN PASSWD. */
  #auth(): Socks5Step | "more" | "next" {
    const b = this.#buf;
    const refuse = () =>
      this.#fail(
        AUTH_FAILED,
        Reply.NOT_ALLOWED,
        "Cannot authenticate SOCKS5 client: invalid username or password",
      );
    if (b.length < 1) return "more";
    if (b[0] !== AUTH_VERSION) return refuse();
    if (b.length < 2) return "more";
    const ulen = b[1]!;
    if (ulen === 0) return refuse();
    if (b.length < 3 + ulen) return "more";
    const plen = b[2 + ulen]!;
    if (plen === 0) return refuse();
    if (b.length < 3 + ulen + plen) return "more";
    const ok = checkCredentials(
      this.#users!,
      b.subarray(2, 2 + ulen),
      b.subarray(3 + ulen, 3 + ulen + plen),
    );
    if (!ok) return refuse();
    this.#consume(3 + ulen + plen);
    this.#pending.push(AUTH_OK);
    this.#state = "request";
    return "next";
  }

  /** RFC 1928 section 4: VER CMD RSV ATYP DST.ADDR DST.PORT. */
  #request(): Socks5Step | "more" {
    const b = this.#buf;
    const fail = (reply: number, detail: string) =>
      this.#fail(encodeReply(reply), reply, `Cannot accept SOCKS5 request: ${detail}`);
    if (b.length < 1) return "more";
    if (b[0] !== SOCKS_VERSION) return fail(Reply.GENERAL_FAILURE, `version ${b[0]}, expected 5`);
    if (b.length < 2) return "more";
    if (b[1] !== CMD_CONNECT && !(this.#udp && b[1] === CMD_UDP_ASSOCIATE)) {
      const name = ["", "CONNECT", "BIND", "UDP ASSOCIATE"][b[1]!] ?? hex(b[1]!);
      return fail(Reply.COMMAND_NOT_SUPPORTED, `command ${name} is not supported`);
    }
    if (b.length < 3) return "more";
    if (b[2] !== 0) {
      return fail(Reply.GENERAL_FAILURE, `reserved byte is ${hex(b[2]!)}, expected 0x00`);
    }
    if (b.length < 4) return "more";
    if (b[3] === ATYP_DOMAIN && b.length < 5) return "more";
    const total = messageLength(b[3]!, b[4] ?? 0);
    if (total === null) {
      return fail(Reply.ADDRESS_TYPE_NOT_SUPPORTED, `address type ${hex(b[3]!)} is unknown`);
    }
    if (b.length < total) return "more";
    const raw = b.slice(0, total);
    let request: Socks5Request;
    try {
      request = decodeRequest(raw);
    } catch (e) {
      // UDP ASSOCIATE names the client's own address, which only filters its
      // datagrams: a domain there (PySocks sends "0") means "any address".
      if (b[1] === CMD_UDP_ASSOCIATE && b[3] === ATYP_DOMAIN && e instanceof Socks5Error) {
        request = {
          command: "udp_associate",
          addressType: "domain",
          host: "",
          port: (raw[total - 2]! << 8) | raw[total - 1]!,
        };
        return this.#done(request, raw, b.slice(total));
      }
      const reply = e instanceof Socks5Error ? e.reply : Reply.GENERAL_FAILURE;
      const message = e instanceof Error ? e.message : String(e);
      return this.#fail(encodeReply(reply), reply, message);
    }
    return this.#done(request, raw, b.slice(total));
  }

  #done(request: Socks5Request, raw: Uint8Array, rest: Uint8Array): Socks5Step {
    this.#state = "done";
    this.#buf = EMPTY;
    if (this.#pending.length === 0) return { type: "request", request, raw, rest };
    const send = concat(this.#pending);
    this.#pending = [];
    return { type: "request", request, raw, rest, send };
  }
}
