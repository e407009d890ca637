/**
 * The one place the public API meets the client's session manager
 * (`ClientTunnel`: path selection, reconnection and resumption, no local
 * listeners).
 *
 * @module
 */
export { ClientTunnel, type ClientTunnelOptions } from "../tunnel/client_tunnel.ts";
