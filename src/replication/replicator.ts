import type { BuiltinMesh } from '../engine/types.js'
import { ErrorCode, MeshmirrorError, ValidationError } from '../errors.js'
import { type Logger, silentLogger } from '../logger.js'
import { backoffMs } from '../util/backoff.js'
import { delay } from '../util/delay.js'
import { Emitter } from '../util/emitter.js'
import { type Discovery, startDiscovery } from './discovery.js'
import { MAX_CHANGES_PER_CHUNK } from './inbound-stream.js'
import { type LinkKey, linkKeys, MAX_SECRETS } from './link-keys.js'
import { CollectionBudget, type PeerLimits, resolvePeerLimits } from './peer-limits.js'
import { PeerSession, type PeerStatus } from './peer-session.js'
import { isMeshId } from './protocol.js'
import type { Connection, LinkSecurity, Listener, Transport } from './transport.js'
import { type WsTransportOptions, wsTransport } from './ws-transport.js'

/** How a builtin mesh replicates: which mesh, how peers prove membership, where to listen and whom to dial. */
export interface ReplicationOptions {
  /** Which mesh this is: peers of another mesh are refused. */
  meshId: string
  /**
   * Shared secret of the mesh. It keys the TLS of every link (through keys
   * derived from it and the mesh id) and proves membership by
   * challenge-response; it never crosses the wire.
   */
  secret: string
  /**
   * Secrets still accepted while the mesh moves to a new `secret` (at most
   * 3): a peer links with any peer holding one of its secrets. See the
   * rotation procedure in the replication documentation.
   */
  previousSecrets?: readonly string[]
  /**
   * Plain `ws://` links, readable and alterable by anyone on the network
   * path (membership is still proven). Default false: links are encrypted.
   * Every peer of a mesh must agree.
   */
  insecure?: boolean
  /** Accept peers on this address. Port 0 picks a free port (see `replicator.port`). */
  listen?: { host: string; port: number }
  /** Peers to dial and keep dialing: `ws://host:port` (encrypted unless `insecure`), `wss://…` (certificates, see `ws.tls`). */
  peers?: readonly string[]
  /** Advertise and find peers of the same mesh on the LAN (mDNS/DNS-SD). Default false. */
  discovery?: boolean
  /** Carrier. Default: WebSocket with `ws` options. */
  transport?: Transport
  /** WebSocket carrier options: frame limit, keep-alive, certificates for `wss`. */
  ws?: WsTransportOptions
  /** Changes per chunk. Default 500. */
  chunkSize?: number
  /** Chunks in flight per peer before waiting for acks. Default 4. */
  window?: number
  /**
   * Live commits within this window go out together: after a quiet spell a
   * commit goes out at once, while commits stream in at most one push per
   * window. Default 1 ms (see docs/performance.md, "Live write").
   */
  coalesceMs?: number
  /** Reconnect backoff bounds. Default 100 ms to 10 s. */
  reconnect?: { minMs?: number; maxMs?: number }
  /** A link that has not authenticated within this many ms is dropped. Default 10,000. */
  handshakeTimeoutMs?: number
  /** What one peer may make this one do: document size, fields, new collections, change rate. */
  limits?: PeerLimits
  logger?: Logger
}

/** Counters of a replicator, summed over its links past and present (`peers`, `livePeers`, `maxLag`: open links now). */
export interface ReplicationStats {
  peers: number
  livePeers: number
  changesSent: number
  changesReceived: number
  bytesSent: number
  bytesReceived: number
  /** Connections refused or dropped for bad input, protocol violations or failed authentication (TLS handshakes included). */
  rejectedConnections: number
  /** Chunks a peer delivered twice (skipped). */
  duplicates: number
  /** Chunks held back because their peer sent faster than `limits.maxChangesPerSecond`. */
  throttled: number
  /** The largest lag over the connected peers (our changes not yet acknowledged). */
  maxLag: number
}

export interface ReplicationEvents {
  /** A peer link changed state (`connecting`, `handshaking`, `syncing`, `live`, `closed`). */
  peer: PeerStatus
  /** A peer was refused or dropped for a reason worth logging. */
  error: { peer: PeerStatus; error: MeshmirrorError }
}

/**
 * Keeps a builtin mesh replicated with its peers: accepts and dials
 * connections, authenticates them, exchanges exactly what each side lacks,
 * then streams commits live; reconnects with backoff.
 */
export interface Replicator extends AsyncDisposable {
  /** The bound listen port, when listening. */
  readonly port: number | undefined
  /** Open links, and dialed peers not connected right now (state `connecting`). */
  peers(): PeerStatus[]
  /** Totals over every link, past and present. */
  stats(): ReplicationStats
  /** Starts dialing another peer (kept until close). */
  addPeer(url: string): void
  on<E extends keyof ReplicationEvents>(event: E, listener: (payload: ReplicationEvents[E]) => void): () => void
  /** Disconnects every peer and stops listening. Idempotent. Does not close the mesh. */
  close(): Promise<void>
}

/**
 * Starts replication for an open builtin mesh (for example one opened
 * through the instance manager). `openMesh` with `meshId` and `secret` does
 * this in one call. Rejects with `INVALID_OPTIONS` for malformed options and
 * `ADDRESS_IN_USE` when the listen address is taken.
 *
 * @example
 * ```ts
 * const replication = await startReplication(mesh, {
 *   meshId: 'shop-42', secret: process.env.MESH_SECRET!,
 *   listen: { host: '0.0.0.0', port: 4040 }, peers: ['ws://10.0.0.12:4040'],
 * })
 * replication.on('error', ({ peer, error }) => log.warn(error.code, peer.remote, error.message))
 * // on shutdown, before closing the mesh:
 * await replication.close()
 * ```
 */
export async function startReplication(mesh: BuiltinMesh, options: ReplicationOptions): Promise<Replicator> {
  checkOptions(options)
  const r = new ReplicatorImpl(mesh, options)
  try {
    await r.start()
  } catch (error) {
    await r.close()
    throw error
  }
  return r
}

function checkOptions(o: ReplicationOptions): void {
  const bad = (m: string) => new ValidationError(ErrorCode.INVALID_OPTIONS, `replication: ${m}.`)
  if (!isMeshId(o.meshId)) throw bad('meshId must be 1-128 characters from [A-Za-z0-9_.:-]')
  if (typeof o.secret !== 'string' || o.secret.length < 8) throw bad('secret must be a string of at least 8 characters')
  const previous = o.previousSecrets ?? []
  if (!Array.isArray(previous) || previous.length > MAX_SECRETS - 1)
    throw bad(`previousSecrets must be a list of at most ${MAX_SECRETS - 1} secrets`)
  for (const s of previous) {
    if (typeof s !== 'string' || s.length < 8) throw bad('previousSecrets must hold strings of at least 8 characters')
  }
  if (new Set([o.secret, ...previous]).size !== previous.length + 1)
    throw bad('previousSecrets must differ from secret and from each other')
  if (o.insecure !== undefined && typeof o.insecure !== 'boolean') throw bad('insecure must be true or false')
  // With a custom transport, its own URL scheme is fine.
  const url = o.transport ? /^[a-z][a-z0-9+.-]*:\/\/\S+$/ : /^wss?:\/\/\S+$/
  for (const peer of o.peers ?? []) {
    if (typeof peer !== 'string' || !url.test(peer))
      throw bad(`peer ${JSON.stringify(peer)} is not a ws:// or wss:// URL`)
  }
  if (o.listen && (!Number.isInteger(o.listen.port) || o.listen.port < 0 || o.listen.port > 65535)) {
    throw bad('listen.port must be 0-65535')
  }
  const int = (v: unknown, min: number, max: number) =>
    v === undefined || (Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max)
  // Bounded by what a peer accepts (MAX_CHANGES_PER_CHUNK, and the protocol's window limit).
  if (!int(o.chunkSize, 1, MAX_CHANGES_PER_CHUNK)) throw bad(`chunkSize must be an integer 1-${MAX_CHANGES_PER_CHUNK}`)
  if (!int(o.window, 1, 1024)) throw bad('window must be an integer 1-1024')
  if (!int(o.coalesceMs, 0, 60_000)) throw bad('coalesceMs must be an integer 0-60000')
  if (!int(o.handshakeTimeoutMs, 1, 600_000)) throw bad('handshakeTimeoutMs must be an integer 1-600000')
  if (!int(o.ws?.maxFrameBytes, 1024, 2 ** 31)) throw bad('ws.maxFrameBytes must be an integer of at least 1024')
  resolvePeerLimits(o.limits)
}

const REFUSALS = new Set<string>([ErrorCode.PEER_AUTH_FAILED, ErrorCode.PROTOCOL_ERROR])

/** How long a site dropped for breaking the rules `strikes` times in a row is refused: 1 s, doubling, at most 60 s. */
const COOLDOWN = { initialMs: 1000, maxMs: 60_000 }
/** Most sites remembered as cooling down. */
const MAX_COOLDOWNS = 10_000

class ReplicatorImpl implements Replicator {
  private readonly transport: Transport
  private readonly keys: LinkKey[]
  private readonly sessions = new Set<PeerSession>()
  private readonly dialing = new Map<string, AbortController>()
  private listener: Listener | undefined
  private discovery: Discovery | undefined
  private offCommit: (() => void) | undefined
  private localSeq = 0
  /** Dialed URLs with no open link: why the last attempt ended. */
  private readonly waiting = new Map<string, string | undefined>()
  private closing: Promise<void> | undefined
  private readonly logger: Logger
  private readonly events: Emitter<ReplicationEvents>
  private readonly limits: ReturnType<typeof resolvePeerLimits>
  private readonly collections: CollectionBudget
  /** Sites dropped for breaking the rules after authenticating: how often in a row, and until when they are refused. */
  private readonly cooldown = new Map<string, { strikes: number; until: number }>()
  /** When each link's throttling was last logged. */
  private readonly throttleLogged = new WeakMap<PeerSession, number>()
  private readonly totals = {
    changesSent: 0,
    changesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    rejectedConnections: 0,
    duplicates: 0,
    throttled: 0,
  }

  constructor(
    private readonly mesh: BuiltinMesh,
    private readonly o: ReplicationOptions,
  ) {
    this.logger = o.logger ?? silentLogger
    this.events = new Emitter(this.logger)
    const secrets = [o.secret, ...(o.previousSecrets ?? [])]
    this.keys = linkKeys(o.meshId, secrets)
    this.limits = resolvePeerLimits(o.limits)
    this.collections = new CollectionBudget(() => mesh.collections(), this.limits.maxCollections)
    this.transport =
      o.transport ??
      wsTransport({
        onServerError: (error) => this.logger.error('replication listener failed', { error: error.message }),
        onRefused: (error, remote) => this.refused(remote, 'inbound', error),
        ...(o.insecure ? {} : { psk: { meshId: o.meshId, secrets } }),
        ...o.ws,
      })
    if (o.insecure && !o.transport) {
      this.logger.warn('replication links are not encrypted (insecure: true): anyone on the network can read them')
    }
  }

  /** A connection refused before it became a session (a TLS handshake failed, or the two ends disagree on TLS). */
  private refused(remote: string, direction: 'inbound' | 'outbound', error: MeshmirrorError): void {
    this.totals.rejectedConnections++
    this.logger.warn('replication peer error', { remote, error: error.message })
    this.emit('error', {
      peer: { ...this.connectingStatus(remote), direction, state: 'closed', lastError: error.message },
      error,
    })
  }

  /** How a dialed URL's link is protected by the WebSocket carrier; undefined for another carrier. */
  private security(url: string): LinkSecurity | undefined {
    if (this.o.transport) return undefined
    if (url.startsWith('wss://')) return 'certificate'
    return this.o.insecure ? 'insecure' : 'psk'
  }

  get port(): number | undefined {
    return this.listener?.port
  }

  async start(): Promise<void> {
    this.localSeq = (await this.mesh.stats()).sequence
    this.offCommit = this.mesh.onCommit((seq) => {
      this.localSeq = seq
      for (const s of this.sessions) s.notify()
    })
    if (this.o.listen) {
      this.listener = await this.transport.listen(this.o.listen, (c) => this.attach(c, 'inbound'))
      this.logger.info('replication listening', { host: this.listener.host, port: this.listener.port })
    }
    for (const url of this.o.peers ?? []) this.addPeer(url)
    if (this.o.discovery) {
      this.discovery = startDiscovery({
        meshId: this.o.meshId,
        site: this.mesh.siteId,
        port: this.listener?.port,
        onPeer: (url) => this.addPeer(url),
        logger: this.logger,
      })
    }
  }

  private attach(connection: Connection, direction: 'inbound' | 'outbound'): PeerSession {
    const session = new PeerSession(connection, {
      mesh: this.mesh,
      meshId: this.o.meshId,
      keys: this.keys,
      direction,
      chunkSize: this.o.chunkSize ?? 500,
      window: this.o.window ?? 4,
      coalesceMs: this.o.coalesceMs ?? 1,
      maxFrameBytes: this.o.ws?.maxFrameBytes ?? 16 * 1024 * 1024,
      handshakeTimeoutMs: this.o.handshakeTimeoutMs ?? 10_000,
      limits: this.limits,
      collections: this.collections,
      localSeq: () => this.localSeq,
      // A version vector learned from one peer may be news to the others.
      onLearned: (from) => {
        for (const s of this.sessions) if (s !== from) s.notify()
      },
      admit: (s, site) => {
        const cool = this.cooldown.get(site)
        const left = cool ? Math.ceil(cool.until - performance.now()) : 0
        if (left > 0) {
          const reason = `dropped ${cool!.strikes}× for breaking the rules; refused for another ${left} ms`
          return { code: ErrorCode.PEER_LIMIT_EXCEEDED, reason }
        }
        for (const other of this.sessions) {
          if (other !== s && other.site === site && other.state !== 'closed' && other.state !== 'handshaking') {
            const reason = `duplicate site id ${site}: already connected (${other.connection.remote})`
            return { code: ErrorCode.PROTOCOL_ERROR, reason }
          }
        }
        return undefined
      },
      onThrottle: (s, ms) => {
        const now = performance.now()
        const last = this.throttleLogged.get(s)
        if (last !== undefined && now - last < 60_000) return
        this.throttleLogged.set(s, now)
        const { throttled } = s.status()
        this.logger.warn('replication peer throttled', {
          peer: s.site,
          remote: s.connection.remote,
          reason: `over ${this.limits.maxChangesPerSecond} changes/s`,
          waitMs: ms,
          throttled,
        })
      },
      onState: (s) => this.emit('peer', s.status()),
      onError: (s, error) => {
        this.totals.rejectedConnections++
        this.logger.warn('replication peer error', { peer: s.site, remote: s.connection.remote, error: error.message })
        this.emit('error', { peer: s.status(), error })
      },
    })
    this.sessions.add(session)
    void session.closed.then(() => {
      const st = session.status()
      this.totals.changesSent += st.changesSent
      this.totals.changesReceived += st.changesReceived
      this.totals.bytesSent += st.bytesSent
      this.totals.bytesReceived += st.bytesReceived
      this.totals.duplicates += st.duplicates
      this.totals.throttled += st.throttled
      this.sessions.delete(session)
      this.noteEnd(session)
    })
    return session
  }

  /**
   * A site we dropped for breaking the rules once it had authenticated is
   * refused for a while, growing with each drop in a row, so a peer that
   * misbehaves and reconnects at once cannot keep this one busy. A link
   * that got to live and ended otherwise clears it.
   */
  private noteEnd(session: PeerSession): void {
    const site = session.site
    if (!site || !session.authenticatedOnce) return
    const code = session.refusedWith
    if (code === ErrorCode.PROTOCOL_ERROR || code === ErrorCode.PEER_LIMIT_EXCEEDED) {
      const now = performance.now()
      const strikes = (this.cooldown.get(site)?.strikes ?? 0) + 1
      const ms = backoffMs(strikes - 1, COOLDOWN)
      this.cooldown.delete(site)
      this.cooldown.set(site, { strikes, until: now + ms })
      // Peers that change site ids must not grow the record without end: forget the oldest.
      for (const [old, c] of this.cooldown) {
        if (this.cooldown.size <= MAX_COOLDOWNS && c.until > now - COOLDOWN.maxMs) break
        this.cooldown.delete(old)
      }
      this.logger.warn('replication peer cooling down', { peer: site, remote: session.connection.remote, ms })
    } else if (code === undefined) this.cooldown.delete(site)
  }

  addPeer(url: string): void {
    if (this.closing || this.dialing.has(url)) return
    const controller = new AbortController()
    this.dialing.set(url, controller)
    void this.dialLoop(url, controller.signal)
  }

  private async dialLoop(url: string, signal: AbortSignal): Promise<void> {
    const minMs = this.o.reconnect?.minMs ?? 100
    const maxMs = this.o.reconnect?.maxMs ?? 10_000
    let attempt = 0
    this.waiting.set(url, undefined)
    while (!signal.aborted) {
      try {
        const connection = await this.transport.dial(url, signal)
        this.waiting.delete(url)
        const session = this.attach(connection, 'outbound')
        const reached = await session.closed.then(() => session.status())
        this.waiting.set(url, reached.lastError)
        // A link that got to sync resets the backoff; a refused one, or one we dropped for misbehaving, keeps growing it.
        if (session.refusedWith === undefined && (reached.lastError === undefined || reached.changesReceived > 0))
          attempt = 0
      } catch (error) {
        if (signal.aborted) return
        this.waiting.set(url, (error as Error).message)
        // A refused TLS handshake is an authentication failure (or a configuration mismatch): worth a warning.
        if (error instanceof MeshmirrorError && REFUSALS.has(error.code)) this.refused(url, 'outbound', error)
        else this.logger.debug('replication dial failed', { url, error: (error as Error).message })
      }
      if (signal.aborted) return
      this.emit('peer', this.connectingStatus(url))
      const wait = backoffMs(attempt++, { initialMs: minMs, maxMs, jitter: true })
      // An abort ends the wait early; the loop's condition then ends the dialling.
      await delay(wait, signal).catch(() => undefined)
    }
  }

  private connectingStatus(url: string): PeerStatus {
    return {
      site: undefined,
      remote: url,
      direction: 'outbound',
      state: 'connecting',
      changesSent: 0,
      changesReceived: 0,
      bytesSent: 0,
      bytesReceived: 0,
      lag: 0,
      duplicates: 0,
      throttled: 0,
      connectedAt: '',
      lastError: this.waiting.get(url),
      ...(this.security(url) ? { security: this.security(url) } : {}),
    }
  }

  peers(): PeerStatus[] {
    return [
      ...[...this.sessions].map((s) => s.status()),
      ...[...this.waiting.keys()].map((url) => this.connectingStatus(url)),
    ]
  }

  stats(): ReplicationStats {
    const live = [...this.sessions].map((s) => s.status())
    const sum = (k: 'changesSent' | 'changesReceived' | 'bytesSent' | 'bytesReceived' | 'duplicates' | 'throttled') =>
      this.totals[k] + live.reduce((n, p) => n + p[k], 0)
    return {
      peers: live.length,
      livePeers: live.filter((p) => p.state === 'live').length,
      changesSent: sum('changesSent'),
      changesReceived: sum('changesReceived'),
      bytesSent: sum('bytesSent'),
      bytesReceived: sum('bytesReceived'),
      rejectedConnections: this.totals.rejectedConnections,
      duplicates: sum('duplicates'),
      throttled: sum('throttled'),
      maxLag: live.reduce((n, p) => Math.max(n, p.lag), 0),
    }
  }

  on<E extends keyof ReplicationEvents>(event: E, listener: (payload: ReplicationEvents[E]) => void): () => void {
    return this.events.on(event, listener)
  }

  private emit<E extends keyof ReplicationEvents>(event: E, payload: ReplicationEvents[E]): void {
    this.events.emit(event, payload)
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.offCommit?.()
      for (const c of this.dialing.values()) c.abort()
      this.dialing.clear()
      this.waiting.clear()
      await this.discovery?.stop()
      const closing = [...this.sessions].map((s) => {
        s.close('shutting down')
        return s.closed
      })
      await Promise.all(closing)
      await this.listener?.close()
    })()
    return this.closing
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close()
  }
}
