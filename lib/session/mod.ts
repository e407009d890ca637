/**
 * Session control (docs/PROTOCOL.md part 4 (re-key and release)): pure state machines
 * for the bodies of the session layer's REKEY and RELEASE frames.
 *
 * - `rekey.ts`: ephemeral X25519 exchange whose mixin drives the record
 *   layer's DH re-key (`sealer.rekey`, `opener.provideMixin`).
 * - `release.ts`: three-step graceful release and one-way NOTICE.
 * - `frames.ts`: the RESUME frame, the REKEY payload's link-id wrapper and the
 *   RENEW payload (a fresh JWT).
 * - `controller.ts`: a session's resume, re-key and release decisions over them.
 *
 * None does I/O or sets timers: the caller carries the bodies in frames,
 * keeps the clocks and closes connections.
 *
 * @example
 * ```ts
 * import { RekeyState } from "./mod.ts";
 * const a = new RekeyState("client"), b = new RekeyState("server");
 * const { reply, mixin } = b.consume(a.start());
 * console.log(a.consume(reply!).mixin!.length === mixin!.length); // true
 * ```
 *
 * @module
 */
export * from "./rekey.ts";
export * from "./release.ts";
export * from "./frames.ts";
export * from "./controller.ts";
