/**
 * The session controller: what a session that outlives its links decides,
 * apart from the bytes it moves (docs/PROTOCOL.md part 6 (sessions over
 * links) sections 2 and 3, part 4 (re-key and release)).
 *
 * - **Resume**: what to put in our RESUME frame, and what the peer's says
 *   to do: nothing (we hold no state), start over with a fresh mux (the
 *   peer lost the session), or resend from the peer's received count.
 * - **Re-key**: when one is due (server, by bytes or time since the last),
 *   what to send (REKEY payloads carry the current link's id), which
 *   REKEY payloads to ignore (another link's), and when the mixin goes to
 *   the sealer (at once, or right after sealing the record with our REPLY)
 *   and to the opener (at once).
 * - **Release**: the three-step exchange and the NOTICE: what to send,
 *   what to refuse, and who released the session and why.
 *
 * It is pure: it takes payloads, byte counts and `now`, and returns
 * decisions; the tunnel (`lib/tunnel/session.ts`) sends, seals, keeps the
 * timers and closes connections.
 *
 * @example
 * ```ts
 * import { SessionController } from "./controller.ts";
 * const server = new SessionController({ role: "server", rekey: { bytes: 1000, ms: 60_000 }, now: 0 });
 * const client = new SessionController({ role: "client", now: 0 });
 * server.linkUp(7, 0, 0);
 * client.linkUp(7, 0, 0);
 * console.log(server.rekeyIfDue(30_000, 999)); // undefined: neither limit reached
 * const init = server.rekeyIfDue(30_000, 1000)!; // due by bytes: send in a REKEY frame
 * const answer = client.onRekey(init, 30_001, 1000); // { type: "apply", reply, mixin, sealer: "after_reply" }
 * if (answer.type !== "apply") throw new Error();
 * const done = server.onRekey(answer.reply!, 30_002, 1000); // { type: "apply", mixin, sealer: "now" }
 * console.log(done.type === "apply" && done.mixin.every((b, i) => b === answer.mixin[i])); // true
 * ```
 *
 * @module
 */
import { randomBytes, type RandomSource } from "../crypto/mod.ts";
import { ProtocolError } from "../errors.ts";
import {
  decodeRekeyPayload,
  decodeResumeFrame,
  encodeRekeyPayload,
  encodeResumeFrame,
} from "./frames.ts";
import { RekeyState } from "./rekey.ts";
import { describeReleaseReason, ReleaseReason, ReleaseState } from "./release.ts";

/** Options for {@linkcode SessionController}. */
export interface SessionControllerOptions {
  role: "client" | "server";
  /**
   * Full re-key after this many bytes (both directions) or ms since the last
   * completed exchange, whoever started it. Both sides run their own policy
   * (docs/PROTOCOL.md part 4 section 2.5); when both start at once, the
   * server's INIT wins.
   */
  rekey?: { bytes: number; ms: number };
  /** Key of the release exchange's MACs (`deriveReleaseKey`); copied. */
  releaseKey?: Uint8Array;
  /** When the session started (ms): re-key intervals count from here until the first link. */
  now: number;
  /** Randomness for the ephemeral keys and release nonces (tests pass a fixed source). */
  random?: RandomSource;
}

/** What the peer's RESUME frame asks of us. */
export type ResumeDecision =
  /** We hold no state for this session (we started it afresh): nothing to resend. */
  | { type: "continue" }
  /** The peer lost the session: reset every stream and continue with a fresh mux. */
  | { type: "fresh_mux" }
  /** Resend every kept payload after the peer's `received` count (mux `onPeerResumed`). */
  | { type: "resend"; received: bigint };

/** What to do with a REKEY frame's payload. */
export type RekeyDecision =
  /** Not for this link (stale, resent from an earlier one) or too short to name one. */
  | { type: "ignore"; why: "stale_link" | "no_link_id" }
  /** Taken, nothing to apply (simultaneous INITs: ours wins). */
  | { type: "none" }
  /**
   * The exchange finished: send `reply` (a REKEY payload) if any; give
   * `mixin` to the opener now and to the sealer `now` or right
   * `after_reply` has been sealed (under the old key); then wipe it.
   */
  | {
    type: "apply";
    reply: Uint8Array | undefined;
    mixin: Uint8Array;
    sealer: "now" | "after_reply";
  };

/** How a release we start begins. */
export type ReleaseStart =
  /** Send `body` in a RELEASE frame and wait for the exchange (or a timeout). */
  | { type: "send"; body: Uint8Array }
  /** Nothing to release over: close at once with `reason`. */
  | { type: "close"; reason: string };

/** Who released the session, and why (the session's end reason). */
export interface Released {
  by: "us" | "peer";
  reason: string;
  /** The reason code of the NOTICE `by` sent, when a NOTICE (not the three-step exchange) ended it. */
  notice?: number;
}

/** What to do with a RELEASE frame's body. */
export interface ReleaseDecision {
  /** A RELEASE body to send. */
  reply?: Uint8Array;
  /** The body was refused (malformed, bad MAC, out of order): log it; nothing changes. */
  refused?: string;
  /** The session is released: send `reply` first, then end it (flushing first when `by` the peer). */
  released?: Released;
}

/** The end reason of a release we started that the peer did not answer in time. */
export const RELEASE_UNANSWERED = "released (peer did not answer)";

/**
 * One session's resume, re-key and release decisions. Call
 * {@linkcode SessionController.linkUp} for every link, feed it the peer's
 * RESUME, REKEY and RELEASE payloads, and do what it returns.
 */
export class SessionController {
  readonly #role: "client" | "server";
  readonly #policy: { bytes: number; ms: number } | undefined;
  readonly #random: RandomSource;
  #linkId = 0;
  #rekey: RekeyState;
  #rekeyAt: number;
  #rekeyBytesAt = 0;
  #releaseKey: Uint8Array | undefined;
  #release: ReleaseState | undefined;
  /** A release we started waits for the exchange to finish. */
  #awaiting = false;
  #released: Released | undefined;

  constructor(options: SessionControllerOptions) {
    if (options.role !== "client" && options.role !== "server") {
      throw new TypeError(
        `Cannot create session controller: unknown role "${String(options.role)}"`,
      );
    }
    this.#role = options.role;
    this.#policy = options.rekey;
    this.#random = options.random ?? randomBytes;
    this.#rekey = new RekeyState(this.#role, this.#random);
    this.#rekeyAt = options.now;
    this.#releaseKey = options.releaseKey?.slice();
  }

  /** Set once a release exchange or a NOTICE released the session. */
  get released(): Released | undefined {
    return this.#released;
  }

  /** Our REKEY INIT waits for the peer's REPLY. */
  get rekeyPending(): boolean {
    return this.#rekey.pending;
  }

  /** The id REKEY payloads carry on the current link. */
  get linkId(): number {
    return this.#linkId;
  }

  // ---- links and resumption ------------------------------------------------

  /**
   * A new link carries the session from `now`, when `bytes` had crossed
   * the tunnel. A re-key in progress on the old link is abandoned (the
   * resumption derived fresh keys from a fresh DH) and the re-key counters
   * restart.
   */
  linkUp(linkId: number, now: number, bytes: number): void {
    this.#linkId = linkId;
    this.#rekey.wipe();
    this.#rekey = new RekeyState(this.#role, this.#random);
    this.#rekeyAt = now;
    this.#rekeyBytesAt = bytes;
  }

  /**
   * Our RESUME frame for a resumed link: `received` from our mux, or 0 and
   * STATE_LOST when we hold no state for this session.
   */
  resumeFrame(received: bigint, stateLost: boolean): Uint8Array {
    return encodeResumeFrame({ received: stateLost ? 0n : received, stateLost });
  }

  /**
   * The peer's RESUME frame (the first record on a resumed link). Throws
   * `ProtocolError` when it is not exactly one RESUME frame.
   */
  onResume(payload: Uint8Array, weLostState: boolean): ResumeDecision {
    const peer = decodeResumeFrame(payload);
    if (weLostState) return { type: "continue" };
    if (peer.stateLost) return { type: "fresh_mux" };
    return { type: "resend", received: peer.received };
  }

  // ---- re-key -----------------------------------------------------------------

  /**
   * The periodic check: a REKEY INIT payload to send when a re-key is due
   * (a policy, none pending, `bytes` or time since the last exchange
   * reached); the interval then restarts at `now`.
   */
  rekeyIfDue(now: number, bytes: number): Uint8Array | undefined {
    const p = this.#policy;
    if (p === undefined || this.#rekey.pending) return undefined;
    if (now - this.#rekeyAt < p.ms && bytes - this.#rekeyBytesAt < p.bytes) return undefined;
    const init = this.startRekey();
    this.#rekeyAt = now;
    return init;
  }

  /** A REKEY INIT payload to send now, or `undefined` while one is pending. */
  startRekey(): Uint8Array | undefined {
    if (this.#rekey.pending) return undefined;
    return encodeRekeyPayload(this.#linkId, this.#rekey.start());
  }

  /**
   * A REKEY payload from the peer at `now`, when `bytes` had crossed the
   * tunnel. Throws `ProtocolError` for a malformed body or a REPLY without
   * our INIT: the two sides' keys may no longer agree.
   */
  onRekey(payload: Uint8Array, now: number, bytes: number): RekeyDecision {
    const rk = decodeRekeyPayload(payload);
    if (rk === undefined) return { type: "ignore", why: "no_link_id" };
    if (rk.linkId !== this.#linkId) return { type: "ignore", why: "stale_link" };
    const action = this.#rekey.consume(rk.body);
    if (action.mixin === undefined) return { type: "none" };
    this.#rekeyAt = now;
    this.#rekeyBytesAt = bytes;
    if (action.reply === undefined) {
      return { type: "apply", reply: undefined, mixin: action.mixin, sealer: "now" };
    }
    return {
      type: "apply",
      reply: encodeRekeyPayload(this.#linkId, action.reply),
      mixin: action.mixin,
      sealer: "after_reply",
    };
  }

  // ---- release ----------------------------------------------------------------

  /** Replaces the release key (it changes with every resumption); copied. */
  setReleaseKey(key: Uint8Array): void {
    this.#releaseKey?.fill(0);
    this.#releaseKey = key.slice();
  }

  /**
   * We end the session with the three-step release: the REQUEST to send,
   * or `close` when there is no key or no ready link to release over.
   */
  startRelease(linkReady: boolean): ReleaseStart {
    if (this.#releaseKey === undefined || !linkReady) {
      return { type: "close", reason: "closed without a link to release over" };
    }
    const rs = new ReleaseState(this.#releaseKey, this.#role, this.#random);
    this.#release = rs;
    this.#awaiting = true;
    return { type: "send", body: rs.request() };
  }

  /**
   * Our release was not answered in time: the NOTICE (`NO_RESPONSE`) to
   * send best-effort before closing, and the end reason. Throws
   * `ProtocolError` `BAD_STATE` without a `startRelease()` first.
   */
  releaseUnanswered(): { body: Uint8Array; released: Released } {
    const rs = this.#release;
    if (rs === undefined) {
      throw new ProtocolError("BAD_STATE", "Cannot give up a release: none was started");
    }
    const body = rs.notice(ReleaseReason.NO_RESPONSE);
    return {
      body,
      released: { by: "us", reason: RELEASE_UNANSWERED, notice: ReleaseReason.NO_RESPONSE },
    };
  }

  /** A NOTICE body to send before closing (e.g. shutdown), or `undefined` without a key. */
  notice(code: number): Uint8Array | undefined {
    if (this.#releaseKey === undefined) return undefined;
    return new ReleaseState(this.#releaseKey, this.#role, this.#random).notice(code);
  }

  /** A RELEASE body from the peer (ignored without a release key). */
  onRelease(body: Uint8Array): ReleaseDecision {
    if (this.#releaseKey === undefined) return {};
    this.#release ??= new ReleaseState(this.#releaseKey, this.#role, this.#random);
    const action = this.#release.consume(body);
    if (action.error !== undefined) return { refused: action.error };
    const out: ReleaseDecision = {};
    if (action.reply !== undefined) out.reply = action.reply;
    if (action.released === true) {
      // A release we started ends as ours, even when a NOTICE crossed our REQUEST.
      const by = this.#awaiting ? "us" : "peer";
      this.#awaiting = false;
      const reason = by === "us"
        ? "released"
        : action.reason === undefined
        ? "released by peer"
        : `peer ended the session (notice ${action.reason}: ${
          describeReleaseReason(action.reason)
        })`;
      const released: Released = by === "us" || action.reason === undefined
        ? { by, reason }
        : { by, reason, notice: action.reason };
      this.#released = released;
      out.released = released;
    }
    return out;
  }

  /** The session ended: zero the pending ephemeral key and the release key. */
  wipe(): void {
    this.#rekey.wipe();
    this.#releaseKey?.fill(0);
  }
}
