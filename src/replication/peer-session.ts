import type { BuiltinMesh, VersionVector } from '../engine/types.js'
import { ErrorCode, MeshmirrorError } from '../errors.js'
import { newNonce, proof, verifyProof } from './auth.js'
import { InboundStream } from './inbound-stream.js'
import { commonKey, type LinkKey } from './link-keys.js'
import { OutboundStream } from './outbound-stream.js'
import type { CollectionBudget, PeerLimits } from './peer-limits.js'
import { decodeMessage, encodeMessage, type Message, PROTOCOL_VERSION } from './protocol.js'
import type { Connection, LinkSecurity } from './transport.js'

/**
 * Where a peer link is: `connecting` (dialing, or waiting to dial again),
 * `handshaking` (authenticating), `syncing` (catching up), `live`
 * (caught up, streaming commits), `closed`.
 */
export type PeerState = 'connecting' | 'handshaking' | 'syncing' | 'live' | 'closed'

/** A peer as the CLI and dashboards see it. */
export interface PeerStatus {
  /** The peer's site id, once known. */
  site: string | undefined
  remote: string
  direction: 'inbound' | 'outbound'
  state: PeerState
  changesSent: number
  changesReceived: number
  bytesSent: number
  bytesReceived: number
  /** How many of our changes (by our change sequence) the peer has not acknowledged yet. */
  lag: number
  /** Chunks the peer delivered twice (skipped: applying them again would change nothing). */
  duplicates: number
  /** Chunks held back because the peer sent faster than `limits.maxChangesPerSecond`. */
  throttled: number
  connectedAt: string
  lastError: string | undefined
  /** How the carrier protects the link, when it knows: `psk` (the default), `certificate`, `insecure`. */
  security?: LinkSecurity
}

export interface SessionOptions {
  mesh: BuiltinMesh
  meshId: string
  /** The mesh secrets this peer holds, preferred first (several while they rotate). */
  keys: readonly LinkKey[]
  direction: 'inbound' | 'outbound'
  /** Changes per chunk. */
  chunkSize: number
  /** Chunks in flight before waiting for an ack. */
  window: number
  /** Live commits within this many ms go out together. */
  coalesceMs: number
  /** Largest frame accepted, in bytes. */
  maxFrameBytes: number
  /** Drops a link still unauthenticated after this many ms. */
  handshakeTimeoutMs: number
  /** What the peer may make us do. */
  limits: Required<PeerLimits>
  /** The store's collections, shared by every link. */
  collections: CollectionBudget
  /** Our latest change sequence. */
  localSeq(): number
  /**
   * Refuses a second live connection to the same site, or a site still
   * cooling down after being dropped for a limit. Returns the code and
   * reason, or undefined to accept.
   */
  admit(session: PeerSession, site: string): { code: ErrorCode; reason: string } | undefined
  onState(session: PeerSession): void
  onError(session: PeerSession, error: MeshmirrorError): void
  /** The peer sends faster than the change rate: its next chunk waits `ms`. */
  onThrottle(session: PeerSession, ms: number): void
  /** The peer's chunk completed a catch-up: other peers may want to hear the new version vector. */
  onLearned(session: PeerSession): void
}

type Of<T extends Message['t']> = Extract<Message, { t: T }>

/** One authenticated replication link: handshake, catch-up in both directions, then live push. */
export class PeerSession {
  state: PeerState = 'handshaking'
  site: string | undefined
  lastError: string | undefined
  /** The code we dropped the link with, when we did (a failed handshake, a violation, a limit). */
  refusedWith: ErrorCode | undefined
  readonly connectedAt = new Date().toISOString()
  readonly closed: Promise<string>
  private markClosed!: (reason: string) => void
  private readonly nonce = newNonce()
  private hello: Of<'hello'> | undefined
  private authProof: string | undefined
  private authenticated = false
  private syncSent = false
  private syncReceived: string | undefined
  private pushTimer: NodeJS.Timeout | undefined
  /** A push queued right after the current commit (a microtask). */
  private pushSoon = false
  /** When the last coalesced push started (performance.now()). */
  private lastPushAt = Number.NEGATIVE_INFINITY
  private handshakeTimer: NodeJS.Timeout | undefined
  private outbound: OutboundStream | undefined
  private inbound: InboundStream | undefined
  private handshakeDuplicates = 0
  private readonly bytes = { bytesSent: 0, bytesReceived: 0 }

  constructor(
    readonly connection: Connection,
    private readonly o: SessionOptions,
  ) {
    this.closed = new Promise((resolve) => {
      this.markClosed = resolve
    })
    // Hello first: attaching the listener may deliver frames that arrived already, and answering them comes after.
    const keys = o.keys.map((k) => k.id)
    this.send({ t: 'hello', v: PROTOCOL_VERSION, mesh: o.meshId, site: o.mesh.siteId, nonce: this.nonce, keys })
    // A link that never authenticates would hold a slot forever.
    this.handshakeTimer = setTimeout(() => {
      this.reject(ErrorCode.PEER_AUTH_FAILED, `no authentication within ${o.handshakeTimeoutMs} ms`)
    }, o.handshakeTimeoutMs)
    this.handshakeTimer.unref()
    connection.onClose((reason, error) => {
      if (error && this.state !== 'closed') this.reject(ErrorCode.PROTOCOL_ERROR, reason, false)
      this.finish(reason)
    })
    connection.onMessage((frame) => this.receive(frame))
  }

  /** True once the peer proved the secret (its site id is then its own). */
  get authenticatedOnce(): boolean {
    return this.authenticated
  }

  status(): PeerStatus {
    return {
      site: this.site,
      remote: this.connection.remote,
      direction: this.o.direction,
      state: this.state,
      changesSent: this.outbound?.changesSent ?? 0,
      changesReceived: this.inbound?.changesReceived ?? 0,
      ...this.bytes,
      lag: Math.max(0, this.o.localSeq() - (this.outbound?.acked ?? 0)),
      duplicates: this.handshakeDuplicates + (this.inbound?.duplicates ?? 0),
      throttled: this.inbound?.throttled ?? 0,
      connectedAt: this.connectedAt,
      lastError: this.lastError,
      ...(this.connection.security ? { security: this.connection.security } : {}),
    }
  }

  /**
   * Something new to tell the peer (a commit, a version learned elsewhere):
   * push it soon, coalescing bursts. After a quiet spell (no push for
   * `coalesceMs`) it goes out right after the commit that made it, without
   * waiting for a turn of the event loop; while commits stream in, pushes
   * are at most one per `coalesceMs`.
   */
  notify(): void {
    if (!this.outbound || this.pushTimer || this.pushSoon || this.state === 'closed') return
    const push = () => {
      this.pushTimer = undefined
      this.pushSoon = false
      if (this.state === 'closed') return
      this.lastPushAt = performance.now()
      void this.outbound?.pump().catch((e) => this.readFailed(e))
    }
    if (performance.now() - this.lastPushAt >= this.o.coalesceMs) {
      this.pushSoon = true
      // A resolved promise's reaction: the same queue as queueMicrotask, without its async resource per call.
      void Promise.resolve().then(push)
    } else this.pushTimer = setTimeout(push, this.o.coalesceMs)
  }

  close(reason: string): void {
    this.connection.close(reason)
    this.finish(reason)
  }

  /** Refuses or drops the link for a reason, counted and reported; tells the peer when it still can. */
  private reject(code: ErrorCode, message: string, tell = true): void {
    if (this.state === 'closed') return
    const error = new MeshmirrorError(code, `Peer ${this.site ?? this.connection.remote}: ${message}`, {
      details: { peer: this.site, remote: this.connection.remote, reason: message },
    })
    this.lastError = message
    this.refusedWith = code
    this.o.onError(this, error)
    if (tell) this.send({ t: 'error', code, message })
    this.close(`${code}: ${message}`)
  }

  private readFailed(error: unknown): void {
    const e = error as MeshmirrorError
    this.reject(
      ErrorCode.PROTOCOL_ERROR,
      e.code === ErrorCode.DOC_TOO_LARGE ? e.message : `cannot read local changes: ${e.message}`,
    )
  }

  private send(m: Message): void {
    this.sendFrame(encodeMessage(m))
  }

  private sendFrame(frame: string): void {
    this.bytes.bytesSent += Buffer.byteLength(frame)
    this.connection.send(frame)
  }

  private setState(state: PeerState): void {
    if (this.state === state || this.state === 'closed') return
    this.state = state
    this.o.onState(this)
  }

  private finish(reason: string): void {
    if (this.state === 'closed') return
    clearTimeout(this.pushTimer)
    clearTimeout(this.handshakeTimer)
    if (!this.lastError && reason && !reason.startsWith('closed')) this.lastError = reason
    this.setState('closed')
    this.markClosed(reason)
  }

  private receive(frame: string): void {
    if (this.state === 'closed') return
    const size = Buffer.byteLength(frame)
    this.bytes.bytesReceived += size
    if (size > this.o.maxFrameBytes) {
      this.reject(ErrorCode.PROTOCOL_ERROR, `frame of ${size} bytes (limit ${this.o.maxFrameBytes})`)
      return
    }
    const m = decodeMessage(frame)
    if (typeof m === 'string') this.reject(ErrorCode.PROTOCOL_ERROR, `malformed message (${m})`)
    else if (m.t === 'error') this.onPeerError(m)
    else if (m.t === 'hello') this.onHello(m)
    else if (m.t === 'auth') this.onAuth(m)
    else if (!this.authenticated) this.reject(ErrorCode.PROTOCOL_ERROR, `${m.t} before authentication`)
    else if (m.t === 'sync') this.onSync(m, frame)
    else if (m.t === 'changes') {
      if (this.syncSent && this.inbound) {
        // The peer held this vector when it sent the chunk. Known before the chunk is applied: applying
        // it commits, the commit wakes our push, and that push must not send the peer its own changes back.
        if (m.complete && m.vv) this.outbound?.peerHas(m.vv)
        this.inbound.receive(m)
      } else this.reject(ErrorCode.PROTOCOL_ERROR, 'changes before sync')
    } else {
      const bad = this.outbound ? this.outbound.onAck(m.n) : 'ack before sync'
      if (bad) this.reject(ErrorCode.PROTOCOL_ERROR, bad)
    }
  }

  private onPeerError(m: Of<'error'>): void {
    this.lastError = `${m.code}: ${m.message}`
    this.o.onError(
      this,
      new MeshmirrorError(
        m.code === ErrorCode.PEER_AUTH_FAILED || m.code === ErrorCode.PEER_LIMIT_EXCEEDED
          ? m.code
          : ErrorCode.PROTOCOL_ERROR,
        `Peer ${this.site ?? this.connection.remote} refused the connection: ${m.message}`,
        { details: { peer: this.site, remote: this.connection.remote, reason: m.message, code: m.code } },
      ),
    )
    this.close(`peer refused: ${m.message}`)
  }

  private onHello(m: Of<'hello'>): void {
    if (this.hello !== undefined) {
      if (this.hello.nonce === m.nonce && this.hello.site === m.site) {
        this.handshakeDuplicates++
        return
      }
      this.reject(ErrorCode.PROTOCOL_ERROR, 'second hello')
      return
    }
    if (m.v !== PROTOCOL_VERSION) {
      this.reject(
        ErrorCode.PROTOCOL_ERROR,
        `protocol version ${m.v} is not supported (this peer speaks ${PROTOCOL_VERSION})`,
      )
      return
    }
    if (m.mesh !== this.o.meshId) {
      this.reject(ErrorCode.PEER_AUTH_FAILED, `mesh ${m.mesh} is not mesh ${this.o.meshId}`)
      return
    }
    if (m.site === this.o.mesh.siteId) {
      this.reject(ErrorCode.PROTOCOL_ERROR, `duplicate site id: ${m.site} is this peer's own`)
      return
    }
    this.site = m.site
    this.hello = m
    // Answer with a secret the peer holds too; a peer that lists none gets the preferred one.
    const key = commonKey(this.o.keys, m.keys ?? []) ?? (this.o.keys[0] as LinkKey)
    this.send({ t: 'auth', proof: proof(key.secret, this.o.meshId, m.nonce, this.o.mesh.siteId) })
  }

  private onAuth(m: Of<'auth'>): void {
    if (this.authenticated && m.proof === this.authProof) {
      this.handshakeDuplicates++
      return
    }
    if (this.hello === undefined || this.site === undefined || this.authenticated) {
      this.reject(ErrorCode.PROTOCOL_ERROR, 'auth out of order')
      return
    }
    const site = this.site
    if (!this.o.keys.some((k) => verifyProof(m.proof, proof(k.secret, this.o.meshId, this.nonce, site)))) {
      this.reject(ErrorCode.PEER_AUTH_FAILED, 'wrong secret')
      return
    }
    const refused = this.o.admit(this, this.site)
    if (refused) {
      this.reject(refused.code, refused.reason)
      return
    }
    this.authenticated = true
    this.authProof = m.proof
    clearTimeout(this.handshakeTimer)
    this.inbound = new InboundStream({
      mesh: this.o.mesh,
      from: site,
      window: this.o.window,
      limits: this.o.limits,
      collections: this.o.collections,
      sendAck: (n, cursor) => this.send({ t: 'ack', n, cursor }),
      onComplete: (vv) => this.caughtUp(vv),
      onReject: (reason, code) => this.reject(code, reason),
      onThrottle: (ms) => this.o.onThrottle(this, ms),
      isClosed: () => this.state === 'closed',
    })
    this.setState('syncing')
    void Promise.all([this.o.mesh.versionVector(), this.o.mesh.peerCursor(site)]).then(
      ([vv, after]) => {
        if (this.state === 'closed') return
        this.send({ t: 'sync', vv, after, window: this.o.window, maxFrame: this.o.maxFrameBytes })
        this.syncSent = true
      },
      (error: Error) => this.reject(ErrorCode.PROTOCOL_ERROR, `cannot read local state: ${error.message}`),
    )
  }

  private caughtUp(vv: VersionVector | undefined): void {
    if (vv) {
      this.outbound?.peerHas(vv)
      this.o.onLearned(this)
    }
    this.setState('live')
  }

  private onSync(m: Of<'sync'>, frame: string): void {
    if (this.syncReceived !== undefined) {
      if (this.syncReceived === frame) {
        this.handshakeDuplicates++
        return
      }
      this.reject(ErrorCode.PROTOCOL_ERROR, 'second sync')
      return
    }
    this.syncReceived = frame
    this.outbound = new OutboundStream({
      mesh: this.o.mesh,
      sendFrame: (frame) => this.sendFrame(frame),
      chunkSize: this.o.chunkSize,
      window: Math.min(this.o.window, m.window),
      maxFrame: m.maxFrame,
      isClosed: () => this.state === 'closed',
      onError: (e) => this.readFailed(e),
    })
    this.outbound.start(m.vv, m.after)
  }
}
