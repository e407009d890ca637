/**
 * A fleet of servers sharing state through one Redis (`store:` in
 * server.yml): the connection (`redis.ts`), the fleet-wide replay cache,
 * tunnel leases and kick channel (`fleet.ts`), and the users' counters
 * (`user_counters.ts`), and the users themselves with `store.users`
 * (`fleet_users.ts`). docs/DEPLOY.md says what is shared and what is not.
 *
 * @module
 */
export {
  COMMAND_TIMEOUT_MS,
  RedisLink,
  type RedisLinkOptions,
  StoreUnavailableError,
} from "./redis.ts";
export {
  ACTIVE_TTL_MS,
  type Claim,
  type ClaimVerdict,
  Fleet,
  type FleetKick,
  type FleetLock,
  type FleetOptions,
  type Lease,
  LEASE_RENEW_MS,
  LEASE_TTL_MS,
  type LeaseVerdict,
  type StoredTicketKey,
} from "./fleet.ts";
export { FleetCounters } from "./user_counters.ts";
export { FleetUsersDoc, USERS_POLL_MS, type UsersDoc } from "./fleet_users.ts";
