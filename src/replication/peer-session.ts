import type { BuiltinMesh, VersionVector } from '../engine/types.js'
import { ErrorCode, MeshmirrorError } from '../errors.js'
import type { Logger } from '../logger.js'
import { newNonce, proof, verifyProof } from './auth.js'
import { decodeMessage, encodeMessage, type Message, PROTOCOL_VERSION } from './protocol.js'
import type { Connection } from './transport.js'

/** Where a peer connection is. */
export type PeerState = 'handshaking' | 'syncing' | 'live' | 'closed'

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
  /** Our changes the peer may not have seen yet (upper bound). */
  lag: number
  connectedAt: string
  lastError: string | undefined
}

export interface SessionOptions {
  mesh: BuiltinMesh
  meshId: string
  secret: string
  direction: 'inbound' | 'outbound'
  /** Changes per chunk. */
  chunkSize: number
  /** Chunks in flight before waiting for an ack. */
  window: number
  /** Live commits within this many ms go out together. */
  coalesceMs: number
  /** Refuses a second live connection to the same site. Returns a reason, or undefined to accept. */
  admit(session: PeerSession, site: string): string | undefined
  onState(session: PeerSession): void
  onError(session: PeerSession, error: MeshmirrorError): void
  logger: Logger
}

const MAX_CHANGES_PER_CHUNK = 10_000

function mergeVv(into: VersionVector, from: VersionVector): void {
  for (const [site, seq] of Object.entries(from)) if (seq > (into[site] ?? 0)) into[site] = seq
}

/** One authenticated replication link: handshake, catch-up in both directions, then live push. */
export class PeerSession {
  state: PeerState = 'handshaking'
  site: string | undefined
  lastError: string | undefined
  readonly connectedAt = new Date().toISOString()
  readonly closed: Promise<string>
  private markClosed!: (reason: string) => void
  private readonly nonce = newNonce()
  private theirNonce: string | undefined
  private authenticated = false
  private sentSync = false
  // Sending side.
  private peerVv: VersionVector = {}
  private sendAfter = 0
  private inflight = 0
  private pumping = false
  private pumpAgain = false
  private completeSignalled = false
  private peerSynced = false
  private pushTimer: NodeJS.Timeout | undefined
  // Receiving side.
  private applyChain: Promise<void> = Promise.resolve()
  private unacked = 0
  private readonly counters = { changesSent: 0, changesReceived: 0, bytesSent: 0, bytesReceived: 0 }

  constructor(
    readonly connection: Connection,
    private readonly o: SessionOptions,
  ) {
    this.closed = new Promise((resolve) => {
      this.markClosed = resolve
    })
    // Hello first: attaching the listener may deliver frames that arrived already, and answering them comes after.
    this.send({ t: 'hello', v: PROTOCOL_VERSION, mesh: o.meshId, site: o.mesh.siteId, nonce: this.nonce })
    connection.onClose((reason) => this.finish(reason))
    connection.onMessage((frame) => this.receive(frame))
  }

  status(): PeerStatus {
    return {
      site: this.site,
      remote: this.connection.remote,
      direction: this.o.direction,
      state: this.state,
      ...this.counters,
      lag: Math.max(0, this.localSeq - this.sendAfter),
      connectedAt: this.connectedAt,
      lastError: this.lastError,
    }
  }

  private localSeq = 0

  /** A local commit happened: push it soon (coalescing bursts). */
  notifyCommit(seq: number): void {
    this.localSeq = seq
    if (!this.peerSynced || this.pushTimer || this.state === 'closed') return
    this.pushTimer = setTimeout(() => {
      this.pushTimer = undefined
      void this.pump()
    }, this.o.coalesceMs)
  }

  close(reason: string): void {
    this.connection.close(reason)
    this.finish(reason)
  }

  private fail(code: string, message: string): void {
    const error = new MeshmirrorError(
      code === ErrorCode.PEER_AUTH_FAILED ? ErrorCode.PEER_AUTH_FAILED : ErrorCode.PROTOCOL_ERROR,
      `Peer ${this.site ?? this.connection.remote}: ${message}`,
      { details: { peer: this.site, remote: this.connection.remote, reason: message } },
    )
    this.lastError = message
    this.o.onError(this, error)
    this.send({ t: 'error', code, message })
    this.close(`${code}: ${message}`)
  }

  private send(m: Message): void {
    const frame = encodeMessage(m)
    this.counters.bytesSent += frame.length
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
    if (!this.lastError && reason && !reason.startsWith('closed')) this.lastError = reason
    this.setState('closed')
    this.markClosed(reason)
  }

  private receive(frame: string): void {
    if (this.state === 'closed') return
    this.counters.bytesReceived += frame.length
    const m = decodeMessage(frame)
    if (typeof m === 'string') {
      this.fail(ErrorCode.PROTOCOL_ERROR, `malformed message (${m})`)
      return
    }
    if (m.t === 'error') {
      this.lastError = `${m.code}: ${m.message}`
      this.o.onError(
        this,
        new MeshmirrorError(
          m.code === ErrorCode.PEER_AUTH_FAILED ? ErrorCode.PEER_AUTH_FAILED : ErrorCode.PROTOCOL_ERROR,
          `Peer ${this.site ?? this.connection.remote} refused the connection: ${m.message}`,
        ),
      )
      this.close(`peer refused: ${m.message}`)
      return
    }
    if (!this.authenticated && m.t !== 'hello' && m.t !== 'auth') {
      this.fail(ErrorCode.PROTOCOL_ERROR, `${m.t} before authentication`)
      return
    }
    switch (m.t) {
      case 'hello':
        this.onHello(m)
        return
      case 'auth':
        void this.onAuth(m)
        return
      case 'sync':
        this.onSync(m)
        return
      case 'changes':
        this.onChanges(m)
        return
      case 'ack':
        this.onAck(m)
        return
    }
  }

  private onHello(m: Extract<Message, { t: 'hello' }>): void {
    if (this.theirNonce !== undefined) {
      this.fail(ErrorCode.PROTOCOL_ERROR, 'second hello')
      return
    }
    if (m.v !== PROTOCOL_VERSION) {
      this.fail(
        ErrorCode.PROTOCOL_ERROR,
        `protocol version ${m.v} is not supported (this peer speaks ${PROTOCOL_VERSION})`,
      )
      return
    }
    if (m.mesh !== this.o.meshId) {
      this.fail(ErrorCode.PEER_AUTH_FAILED, `mesh ${m.mesh} is not mesh ${this.o.meshId}`)
      return
    }
    if (m.site === this.o.mesh.siteId) {
      this.fail(ErrorCode.PROTOCOL_ERROR, `site id ${m.site} is this peer's own`)
      return
    }
    this.site = m.site
    this.theirNonce = m.nonce
    this.send({ t: 'auth', proof: proof(this.o.secret, this.o.meshId, m.nonce, this.o.mesh.siteId) })
  }

  private async onAuth(m: Extract<Message, { t: 'auth' }>): Promise<void> {
    if (this.theirNonce === undefined || this.site === undefined || this.authenticated) {
      this.fail(ErrorCode.PROTOCOL_ERROR, 'auth out of order')
      return
    }
    if (!verifyProof(m.proof, proof(this.o.secret, this.o.meshId, this.nonce, this.site))) {
      this.fail(ErrorCode.PEER_AUTH_FAILED, 'wrong secret')
      return
    }
    const refused = this.o.admit(this, this.site)
    if (refused) {
      this.fail(ErrorCode.PROTOCOL_ERROR, refused)
      return
    }
    this.authenticated = true
    this.setState('syncing')
    try {
      const [vv, after] = await Promise.all([this.o.mesh.versionVector(), this.o.mesh.peerCursor(this.site)])
      this.send({ t: 'sync', vv, after })
      this.sentSync = true
    } catch (error) {
      this.fail(ErrorCode.PROTOCOL_ERROR, `cannot read local state: ${(error as Error).message}`)
    }
  }

  private onSync(m: Extract<Message, { t: 'sync' }>): void {
    if (this.peerSynced) {
      this.fail(ErrorCode.PROTOCOL_ERROR, 'second sync')
      return
    }
    this.peerVv = { ...m.vv }
    this.sendAfter = m.after
    this.peerSynced = true
    void this.pump()
  }

  /** Sends what the peer lacks, at most `window` chunks ahead of its acks. */
  private async pump(): Promise<void> {
    if (this.pumping) {
      this.pumpAgain = true
      return
    }
    this.pumping = true
    try {
      do {
        this.pumpAgain = false
        while (this.state !== 'closed' && this.inflight < this.o.window) {
          const chunk = await this.o.mesh.changesFor(this.peerVv, this.sendAfter, this.o.chunkSize)
          if ((this.state as PeerState) === 'closed') return
          const nothing = chunk.changes.length === 0
          // Once the peer knows it is caught up, an empty chunk tells it nothing.
          if (nothing && this.completeSignalled && chunk.complete) {
            this.sendAfter = chunk.cursor
            break
          }
          this.send({
            t: 'changes',
            changes: chunk.changes,
            cursor: chunk.cursor,
            complete: chunk.complete,
            ...(chunk.complete && chunk.versionVector ? { vv: chunk.versionVector } : {}),
          })
          this.counters.changesSent += chunk.changes.length
          this.inflight++
          this.sendAfter = chunk.cursor
          if (chunk.complete) {
            this.completeSignalled = true
            break
          }
        }
      } while (this.pumpAgain && this.state !== 'closed')
    } catch (error) {
      if (this.state !== 'closed')
        this.fail(ErrorCode.PROTOCOL_ERROR, `cannot read changes: ${(error as Error).message}`)
    } finally {
      this.pumping = false
    }
  }

  private onAck(_m: Extract<Message, { t: 'ack' }>): void {
    if (this.inflight === 0) {
      this.fail(ErrorCode.PROTOCOL_ERROR, 'ack without a chunk in flight')
      return
    }
    this.inflight--
    void this.pump()
  }

  private onChanges(m: Extract<Message, { t: 'changes' }>): void {
    if (!this.sentSync) {
      this.fail(ErrorCode.PROTOCOL_ERROR, 'changes before sync')
      return
    }
    if (m.changes.length > MAX_CHANGES_PER_CHUNK) {
      this.fail(ErrorCode.PROTOCOL_ERROR, `chunk of ${m.changes.length} changes (limit ${MAX_CHANGES_PER_CHUNK})`)
      return
    }
    // A peer that ignores flow control is flooding.
    if (++this.unacked > this.o.window + 2) {
      this.fail(ErrorCode.PROTOCOL_ERROR, 'too many unacknowledged chunks')
      return
    }
    const site = this.site as string
    this.applyChain = this.applyChain.then(async () => {
      if (this.state === 'closed') return
      try {
        if (m.changes.length > 0 || m.vv) {
          await this.o.mesh.applyRemote(m.changes, {
            from: site,
            cursor: m.cursor,
            ...(m.complete && m.vv ? { versionVector: m.vv } : {}),
          })
        }
      } catch (error) {
        const e = error as MeshmirrorError
        this.fail(ErrorCode.PROTOCOL_ERROR, `rejected changes (${e.code ?? 'ERROR'}): ${e.message}`)
        return
      }
      this.counters.changesReceived += m.changes.length
      // What the peer had when it sent a complete chunk, it has now: never send it back.
      if (m.complete && m.vv) mergeVv(this.peerVv, m.vv)
      this.unacked--
      this.send({ t: 'ack', cursor: m.cursor })
      if (m.complete) this.setState('live')
    })
  }
}
