/**
 * What the admin listener and its clients exchange: the live sessions
 * `/status` reports, the answer of `/kick`, and what the listener needs of
 * the server (a {@linkcode SessionDirectory}).
 *
 * @module
 */

/** A live session, as `/status` reports it. */
export interface LiveSession {
  /** Local number of the session (as in the log and events). */
  session: number;
  user: string;
  /** The address the session's first connection came from. */
  source: string;
  /** When the session started (RFC 3339). */
  since: string;
  /** Where its current connection comes from (it changes when the client resumes elsewhere). */
  via: string;
  /** A connection carries the session now (false while it waits for the client to resume). */
  connected: boolean;
  /** Tunnel bytes received from the client and sent to it. */
  bytesIn: number;
  bytesOut: number;
  /** Streams open now, and opened in all. */
  streams: number;
  streamsTotal: number;
  /** The last measured round trip (ms), or null before the first. */
  rttMs: number | null;
}

/** The body of `GET /status`. */
export interface StatusReport {
  server: {
    /** When the server started (RFC 3339). */
    startedAt: string;
    uptimeS: number;
    /** Users in users.yml. */
    users: number;
  };
  sessions: LiveSession[];
}

/** The body of `POST /kick?user=NAME`. */
export interface KickReport {
  user: string;
  /** Live sessions ended. */
  sessions: number;
}

/** What the admin listener needs of the server's sessions. */
export interface SessionDirectory {
  /** The live sessions now. */
  list(): LiveSession[];
  /** Streams open now over every session. */
  streamsLive(): number;
  /**
   * Ends every live session of `user` at once (a NOTICE to the client, then
   * close) and reports it as a `kick` event from `by`; resolves with how
   * many sessions ended.
   */
  kick(user: string, by: string): Promise<number>;
}
