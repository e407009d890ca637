/**
 * The admin listener (`admin.listen`): `/metrics` in the Prometheus text
 * format, `/status` and `/kick` for `nitrosocks status` and `nitrosocks
 * kick`, and the client those commands use.
 *
 * @module
 */
export { type AdminHandle, type AdminOptions, startAdmin } from "./server.ts";
export {
  AdminRequestError,
  type AdminRequestOptions,
  type AdminTarget,
  adminUrl,
  fetchStatus,
  kickUser,
} from "./client.ts";
export type { KickReport, LiveSession, SessionDirectory, StatusReport } from "./types.ts";
