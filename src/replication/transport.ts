/**
 * What replication needs from a carrier: ordered, reliable text frames
 * between two peers. WebSocket is the one shipped; a relay can implement
 * the same interface without touching the engine or the bridge.
 */
export interface Connection {
  /** Where the other end is, for logs (`ws://10.0.0.12:4040`, `inbound 10.0.0.12:53122`). */
  readonly remote: string
  /** How the carrier protects the link, when it knows (`status` and `doctor` warn about `insecure` links). */
  readonly security?: LinkSecurity
  send(frame: string): void
  /** Bytes queued and not yet handed to the network. */
  readonly buffered: number
  onMessage(listener: (frame: string) => void): void
  /**
   * Called once when the connection ends. `error` is set when the carrier
   * dropped it because the other end broke the carrier's rules (an
   * oversized or invalid frame); not for closes, resets or timeouts.
   */
  onClose(listener: (reason: string, error?: Error) => void): void
  /** Closes with a reason the other end can log. Idempotent. */
  close(reason: string): void
}

/**
 * How a link is protected: `psk` (TLS keyed by the mesh secret, the
 * default), `certificate` (`wss://` with certificates), `insecure` (plain:
 * anyone on the network path reads and can alter it).
 */
export type LinkSecurity = 'psk' | 'certificate' | 'insecure'

/** A listening endpoint of a transport. */
export interface Listener {
  /** The bound address (port 0 resolves to the actual port). */
  readonly host: string
  readonly port: number
  close(): Promise<void>
}

/**
 * A carrier for replication links. `wsTransport()` is the default; pass
 * another as `ReplicationOptions.transport` (a relay, an in-memory network).
 */
export interface Transport {
  /** Accepts connections; calls `onConnection` for each. */
  listen(options: { host: string; port: number }, onConnection: (c: Connection) => void): Promise<Listener>
  /** Opens a connection to `url`. Rejects when it cannot be established. */
  dial(url: string, signal?: AbortSignal): Promise<Connection>
}
