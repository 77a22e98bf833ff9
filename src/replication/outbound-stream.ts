import { commitCount, encodedChanges, recentEncodedChanges } from '../engine/encoded-changes.js'
import type { BuiltinMesh, EncodedChunk, RemoteChange, VersionVector } from '../engine/types.js'
import { covers, maxInto } from '../engine/version-vector.js'
import { ErrorCode, MeshmirrorError } from '../errors.js'
import { encodeChanges } from './protocol.js'

/** Chunks a sender reads ahead at most while its window is full, and their text's characters. */
const READ_AHEAD = 4
const READ_AHEAD_CHARS = 8 << 20

export interface OutboundOptions {
  mesh: BuiltinMesh
  /** Sends an encoded `changes` frame. */
  sendFrame(frame: string): void
  chunkSize: number
  /** Chunks in flight at most: ours and the peer's announced limit, whichever is smaller. */
  window: number
  /** The largest frame the peer accepts, in bytes. */
  maxFrame: number
  isClosed(): boolean
  /** Reading our changes failed. */
  onError(error: unknown): void
}

/**
 * The sending half of a link: streams our changes the peer lacks, in
 * chunks, at most `window` unacknowledged at a time.
 *
 * What the peer holds (`peerVv`) starts as the version vector it announced,
 * then grows with the vectors it sends us and the ones we told it once it
 * acknowledges them: changes it already has are never sent (no echo).
 */
export class OutboundStream {
  /** Our sequence the next chunk continues from. */
  private sendAfter = 0
  /** Our highest sequence the peer acknowledged. */
  acked = 0
  private readonly peerVv: VersionVector = {}
  /** Chunks sent in this session. */
  private sentChunks = 0
  /** Numbers, cursors and vectors of the chunks in flight, oldest first. */
  private readonly inflight: { n: number; cursor: number; vv: VersionVector | undefined }[] = []
  /** Everything we told the peer in this session (it will hold it once the chunks are applied). */
  private readonly toldVv: VersionVector = {}
  private lastSentComplete = false
  private pumping = false
  private pumpAgain = false
  /**
   * Chunks read while the window was full, in order, the first continuing
   * from `sendAfter`: the next ones to send, as long as the store committed
   * nothing and the peer's vector stayed as it was (`aheadOf`) since.
   */
  private ahead: { after: number; chunk: EncodedChunk }[] = []
  private aheadOf = ''
  changesSent = 0

  constructor(private readonly o: OutboundOptions) {}

  /** The peer announced what it has: start sending. */
  start(peerVv: VersionVector, after: number): void {
    maxInto(this.peerVv, peerVv)
    this.sendAfter = after
    this.acked = after
    void this.pump().catch(this.o.onError)
  }

  /** What the peer says it has (a vector it sent us). */
  peerHas(vv: VersionVector): void {
    maxInto(this.peerVv, vv)
  }

  /**
   * The peer acknowledged every chunk up to number `n`. Returns a reason
   * when `n` was never sent; a stale (duplicate) ack is ignored.
   */
  onAck(n: number): string | undefined {
    if (n > this.sentChunks) return `ack of chunk ${n}, but only ${this.sentChunks} were sent`
    let any = false
    while (this.inflight.length > 0 && this.inflight[0]!.n <= n) {
      const chunk = this.inflight.shift()!
      if (chunk.vv) maxInto(this.peerVv, chunk.vv)
      this.acked = chunk.cursor
      any = true
    }
    if (any) void this.pump().catch(this.o.onError)
    return undefined
  }

  /** Sends what the peer lacks while the window allows. Rejects when our changes cannot be read. */
  async pump(): Promise<void> {
    if (this.pumping) {
      this.pumpAgain = true
      return
    }
    this.pumping = true
    try {
      do {
        this.pumpAgain = false
        while (!this.o.isClosed() && this.inflight.length < this.o.window) {
          const known = { ...this.peerVv }
          maxInto(known, this.toldVv)
          // Live, what the peer lacks is usually the last commit: sent as committed, without a read.
          let chunk =
            this.readAhead(known) ??
            recentEncodedChanges(this.o.mesh, known, this.sendAfter, this.o.chunkSize) ??
            (await encodedChanges(this.o.mesh, known, this.sendAfter, this.o.chunkSize))
          if (this.o.isClosed()) return
          let vv = chunk.complete ? chunk.versionVector : undefined
          // A complete chunk with nothing in it matters only when it ends a
          // catch-up or tells the peer a version it does not know yet.
          if (
            chunk.changes.length === 0 &&
            chunk.complete &&
            this.lastSentComplete &&
            (vv === undefined || covers(known, vv))
          ) {
            this.sendAfter = chunk.cursor
            if (this.inflight.length === 0) this.acked = Math.max(this.acked, chunk.cursor)
            break
          }
          const n = this.sentChunks + 1
          let frame = this.encode(n, chunk, vv)
          // Fewer changes until the frame fits what the peer accepts.
          while (Buffer.byteLength(frame) > this.o.maxFrame && chunk.changes.length > 1) {
            chunk = await encodedChanges(this.o.mesh, known, this.sendAfter, Math.floor(chunk.changes.length / 2))
            if (this.o.isClosed()) return
            vv = chunk.complete ? chunk.versionVector : undefined
            frame = this.encode(n, chunk, vv)
          }
          const bytes = Buffer.byteLength(frame)
          if (bytes > this.o.maxFrame)
            throw tooLarge(JSON.parse(chunk.changes[0]!) as RemoteChange, bytes, this.o.maxFrame)
          this.sentChunks = n
          this.o.sendFrame(frame)
          this.changesSent += chunk.changes.length
          this.inflight.push({ n, cursor: chunk.cursor, vv })
          if (vv) maxInto(this.toldVv, vv)
          this.sendAfter = chunk.cursor
          this.lastSentComplete = chunk.complete
          if (chunk.complete) break
        }
        // A catch-up waits for acks with the window full: the chunks to send next are read meanwhile.
        if (!this.pumpAgain && !this.lastSentComplete && this.inflight.length >= this.o.window) await this.readNext()
      } while (this.pumpAgain && !this.o.isClosed())
    } finally {
      this.pumping = false
    }
  }

  /** What identifies the chunks read ahead: the store's commits and what the peer holds. */
  private aheadKey(known: VersionVector): string | undefined {
    const commits = commitCount(this.o.mesh)
    return commits === undefined ? undefined : `${commits} ${JSON.stringify(known)}`
  }

  /** The next chunk as read ahead, when what it was read for still holds; otherwise forgets it. */
  private readAhead(known: VersionVector): EncodedChunk | undefined {
    const next = this.ahead.shift()
    if (next === undefined) return undefined
    if (next.after === this.sendAfter && this.aheadKey(known) === this.aheadOf) return next.chunk
    this.ahead = []
    return undefined
  }

  /**
   * Reads the chunks that follow those in flight, as the next pump would, up
   * to a window of them (at most `READ_AHEAD`, and `READ_AHEAD_CHARS` of
   * text): one a turn of the event loop, so that an ack is handled (and sent
   * for) as soon as it arrives.
   */
  private async readNext(): Promise<void> {
    const most = Math.min(this.o.window, READ_AHEAD)
    while (this.ahead.length < most && !this.o.isClosed() && !this.pumpAgain) {
      let chars = 0
      for (const a of this.ahead) for (const c of a.chunk.changes) chars += c.length
      if (chars >= READ_AHEAD_CHARS) return
      const known = { ...this.peerVv }
      maxInto(known, this.toldVv)
      const key = this.aheadKey(known)
      if (key === undefined) return
      if (key !== this.aheadOf) this.ahead = []
      this.aheadOf = key
      const last = this.ahead.at(-1)
      if (last?.chunk.complete) return
      const after = last ? last.chunk.cursor : this.sendAfter
      const chunk = await encodedChanges(this.o.mesh, known, after, this.o.chunkSize)
      if (this.aheadKey(known) !== key) {
        this.ahead = []
        return
      }
      this.ahead.push({ after, chunk })
      await new Promise((resolve) => setImmediate(resolve))
    }
  }

  private encode(n: number, chunk: EncodedChunk, vv: VersionVector | undefined): string {
    return encodeChanges(n, chunk.changes, chunk.cursor, chunk.complete, vv)
  }
}

function tooLarge(change: RemoteChange, chars: number, max: number): MeshmirrorError {
  return new MeshmirrorError(
    ErrorCode.DOC_TOO_LARGE,
    `${change.collection}/${change.id} needs a ${chars}-byte frame; the peer accepts at most ${max}. Raise the peer's ws.maxFrameBytes.`,
    { details: { collection: change.collection, id: change.id, chars, max } },
  )
}
