/**
 * The library API: {@linkcode connect} to a server and `dial` targets
 * through the tunnel, {@linkcode listen} to run a server. The root
 * `mod.ts` re-exports this with the types it refers to.
 *
 * @module
 */
export {
  type ClientProfile,
  connect,
  type ConnectOptions,
  type DialOptions,
  type Tunnel,
} from "./connect.ts";
export type { ReadFullOptions, TunnelConn } from "./conn.ts";
export {
  DATAGRAM_QUEUE_MAX,
  MAX_DATAGRAM_BYTES,
  type ReceiveOptions,
  type TunnelDatagramConn,
} from "./datagram.ts";
export { PeerSlowError, type PeerSlowErrorOptions, type PeerSlowOperation } from "./errors.ts";
export { listen, type ListenOptions, type TunnelServer } from "./listen.ts";
export { TunnelError } from "../tunnel/client.ts";
