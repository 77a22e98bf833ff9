import type { BuiltinMesh, VersionVector } from '../engine/types.js'
import { ErrorCode, type MeshmirrorError } from '../errors.js'
import { delay } from '../util/delay.js'
import { ChangeRate, type CollectionBudget, documentLimitProblem, type PeerLimits } from './peer-limits.js'
import type { Message } from './protocol.js'

type Changes = Extract<Message, { t: 'changes' }>

/** Most changes one chunk may carry. */
export const MAX_CHANGES_PER_CHUNK = 10_000

export interface InboundOptions {
  mesh: BuiltinMesh
  /** The sending peer's site id (its cursor is recorded under it). */
  from: string
  window: number
  limits: Required<PeerLimits>
  /** The store's collections, shared by every link. */
  collections: CollectionBudget
  sendAck(n: number, cursor: number): void
  /** A chunk completed a catch-up: the peer held `vv` when it sent it. */
  onComplete(vv: VersionVector | undefined): void
  /**
   * The chunk broke the protocol, failed validation (`PROTOCOL_ERROR`) or
   * broke a limit (`PEER_LIMIT_EXCEEDED`): drop the link. Nothing of it was applied.
   */
  onReject(reason: string, code: ErrorCode, error?: MeshmirrorError): void
  /** The link is sending faster than `maxChangesPerSecond`: its next chunk waits `ms` before being applied. */
  onThrottle(ms: number): void
  isClosed(): boolean
}

/**
 * The receiving half of a link: applies the peer's chunks strictly in order,
 * each in one transaction together with the peer's cursor, then
 * acknowledges it. A re-delivered chunk is skipped; a chunk out of order or
 * beyond the flow-control window drops the link before anything of it is
 * applied, and the next session resumes from the recorded cursor.
 */
export class InboundStream {
  /** Number of the last chunk received in order. */
  private received = 0
  private applied = 0
  private chain: Promise<void> = Promise.resolve()
  changesReceived = 0
  /** Chunks received again and skipped. */
  duplicates = 0
  /** Chunks held back for going over the change rate, and for how long in all. */
  throttled = 0
  throttledMs = 0
  private readonly rate: ChangeRate

  constructor(private readonly o: InboundOptions) {
    this.rate = new ChangeRate(o.limits.maxChangesPerSecond, o.limits.burstChanges)
  }

  receive(m: Changes): void {
    if (m.n <= this.received) {
      this.duplicates++
      return
    }
    if (m.n !== this.received + 1) {
      this.o.onReject(`chunk ${m.n} arrived after chunk ${this.received}: out of order`, ErrorCode.PROTOCOL_ERROR)
      return
    }
    if (m.changes.length > MAX_CHANGES_PER_CHUNK) {
      this.o.onReject(`chunk of ${m.changes.length} changes (limit ${MAX_CHANGES_PER_CHUNK})`, ErrorCode.PROTOCOL_ERROR)
      return
    }
    // A peer that ignores flow control is flooding.
    if (m.n - this.applied > this.o.window + 2) {
      this.o.onReject(`${m.n - this.applied} unacknowledged chunks (window ${this.o.window})`, ErrorCode.PROTOCOL_ERROR)
      return
    }
    this.received = m.n
    this.chain = this.chain.then(() => this.apply(m))
  }

  private async apply(m: Changes): Promise<void> {
    if (this.o.isClosed()) return
    let refused: string | undefined
    try {
      refused = await this.checkLimits(m)
    } catch (error) {
      // Content no JSON encoder can handle (nesting deep enough to exhaust the stack).
      this.o.onReject(`malformed changes: ${(error as Error).message}`, ErrorCode.PROTOCOL_ERROR)
      return
    }
    if (refused) {
      this.o.onReject(refused, ErrorCode.PEER_LIMIT_EXCEEDED)
      return
    }
    // Over the change rate: hold the chunk, and its ack, so the sender's window fills and it waits.
    const wait = this.rate.take(m.changes.length)
    if (wait > 0) {
      this.throttled++
      this.throttledMs += wait
      this.o.onThrottle(wait)
      await delay(wait)
    }
    if (this.o.isClosed()) return
    try {
      // Even an empty chunk moves the recorded cursor: a later session resumes after it.
      await this.o.mesh.applyRemote(m.changes, {
        from: this.o.from,
        cursor: m.cursor,
        ...(m.complete && m.vv ? { versionVector: m.vv } : {}),
      })
    } catch (error) {
      const e = error as MeshmirrorError
      this.o.onReject(`rejected changes (${e.code ?? 'ERROR'}): ${e.message}`, ErrorCode.PROTOCOL_ERROR, e)
      return
    }
    if (this.o.isClosed()) return
    this.applied = m.n
    this.changesReceived += m.changes.length
    this.o.sendAck(m.n, m.cursor)
    if (m.complete) this.o.onComplete(m.vv)
  }

  /** Why the chunk breaks a limit, or undefined. A change of the wrong shape is left to the store's validation. */
  private async checkLimits(m: Changes): Promise<string | undefined> {
    const shaped = m.changes.every(
      (c) =>
        typeof c === 'object' &&
        c !== null &&
        typeof c.collection === 'string' &&
        typeof c.meta === 'object' &&
        c.meta !== null,
    )
    if (!shaped) return undefined
    return documentLimitProblem(m.changes, this.o.limits) ?? (await this.o.collections.admit(m.changes))
  }
}
