import { applyMeasured } from '../engine/encoded-changes.js'
import type { BuiltinMesh, VersionVector } from '../engine/types.js'
import { ErrorCode, type MeshmirrorError } from '../errors.js'
import { delay } from '../util/delay.js'
import { ChangeRate, type CollectionBudget, documentLimitProblem, type PeerLimits } from './peer-limits.js'
import type { Message } from './protocol.js'

type Changes = Extract<Message, { t: 'changes' }>

/** A chunk in order, and the JSON of its documents as the limits measured them (see `documentLimitProblem`). */
interface Received {
  m: Changes
  docJson: (string | undefined)[]
}

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
 * Most changes one transaction applies when several received chunks wait:
 * they are applied together, and acknowledged by one (cumulative) ack.
 */
export const MAX_CHANGES_PER_APPLY = MAX_CHANGES_PER_CHUNK

/**
 * The receiving half of a link: applies the peer's chunks strictly in order,
 * each in one transaction together with the peer's cursor, then
 * acknowledges it. Chunks that arrive while one is being applied are
 * applied together in the next transaction and acknowledged at once. A
 * re-delivered chunk is skipped; a chunk out of order or beyond the
 * flow-control window drops the link before anything of it is applied, and
 * the next session resumes from the recorded cursor.
 */
export class InboundStream {
  /** Number of the last chunk received in order. */
  private received = 0
  private applied = 0
  /** Chunks received in order, not yet applied. */
  private readonly waiting: Changes[] = []
  private draining = false
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
    this.waiting.push(m)
    if (!this.draining)
      void this.drain().catch((error: unknown) =>
        this.o.onReject(`cannot apply changes: ${(error as Error).message}`, ErrorCode.PROTOCOL_ERROR),
      )
  }

  /** Applies waiting chunks, several at a time, until none waits. */
  private async drain(): Promise<void> {
    this.draining = true
    try {
      while (this.waiting.length > 0 && !this.o.isClosed()) {
        const batch: Received[] = []
        let size = 0
        while (this.waiting.length > 0) {
          const next = this.waiting[0]!
          if (batch.length > 0 && size + next.changes.length > MAX_CHANGES_PER_APPLY) break
          // A chunk naming a collection not known yet is checked against the store's collections
          // as they are once everything before it is applied (and a malformed one is refused alone).
          if (batch.length > 0 && this.o.collections.reads(next.changes)) break
          this.waiting.shift()
          // Each chunk passes the limits on its own; what passed is applied before a refusal or a wait.
          const docJson: (string | undefined)[] = []
          const refused = await this.admit(next, docJson)
          if (refused) {
            if (batch.length > 0 && !(await this.apply(batch))) return
            this.o.onReject(refused.reason, refused.code)
            return
          }
          // Over the change rate: hold the chunk, and its ack, so the sender's window fills and it waits.
          const wait = this.rate.take(next.changes.length)
          if (wait > 0) {
            if (batch.length > 0 && !(await this.apply(batch))) return
            batch.length = 0
            size = 0
            this.throttled++
            this.throttledMs += wait
            this.o.onThrottle(wait)
            await delay(wait)
            if (this.o.isClosed()) return
          }
          batch.push({ m: next, docJson })
          size += next.changes.length
        }
        if (!(await this.apply(batch))) return
      }
    } finally {
      this.draining = false
    }
  }

  /** Why a chunk breaks the peer's limits, or undefined. */
  private async admit(
    m: Changes,
    docJson: (string | undefined)[],
  ): Promise<{ reason: string; code: ErrorCode } | undefined> {
    try {
      const refused = await this.checkLimits(m, docJson)
      return refused === undefined ? undefined : { reason: refused, code: ErrorCode.PEER_LIMIT_EXCEEDED }
    } catch (error) {
      // Content no JSON encoder can handle (nesting deep enough to exhaust the stack).
      return { reason: `malformed changes: ${(error as Error).message}`, code: ErrorCode.PROTOCOL_ERROR }
    }
  }

  /**
   * Applies chunks in one transaction with the cursor of the last, then
   * acknowledges the last (acks are cumulative). False when the link is
   * dropped.
   */
  private async apply(received: readonly Received[]): Promise<boolean> {
    if (this.o.isClosed()) return false
    const batch = received.map((r) => r.m)
    const last = batch[batch.length - 1]!
    let vv: VersionVector | undefined
    for (const m of batch) {
      if (m.complete && m.vv) {
        vv ??= {}
        for (const [site, seq] of Object.entries(m.vv)) if (seq > (vv[site] ?? 0)) vv[site] = seq
      }
    }
    const changes = batch.length === 1 ? last.changes : batch.flatMap((m) => m.changes)
    const docJson = received.length === 1 ? received[0]!.docJson : received.flatMap((r) => padded(r))
    try {
      // Even an empty chunk moves the recorded cursor: a later session resumes after it.
      await applyMeasured(
        this.o.mesh,
        changes,
        { from: this.o.from, cursor: last.cursor, ...(vv ? { versionVector: vv } : {}) },
        docJson,
      )
    } catch (error) {
      const e = error as MeshmirrorError
      this.o.onReject(`rejected changes (${e.code ?? 'ERROR'}): ${e.message}`, ErrorCode.PROTOCOL_ERROR, e)
      return false
    }
    if (this.o.isClosed()) return false
    this.applied = last.n
    this.changesReceived += changes.length
    this.o.sendAck(last.n, last.cursor)
    for (const m of batch) if (m.complete) this.o.onComplete(m.vv)
    return true
  }

  /** Why the chunk breaks a limit, or undefined. A change of the wrong shape is left to the store's validation. */
  private async checkLimits(m: Changes, docJson: (string | undefined)[]): Promise<string | undefined> {
    const shaped = m.changes.every(
      (c) =>
        typeof c === 'object' &&
        c !== null &&
        typeof c.collection === 'string' &&
        typeof c.meta === 'object' &&
        c.meta !== null,
    )
    if (!shaped) return undefined
    return documentLimitProblem(m.changes, this.o.limits, docJson) ?? (await this.o.collections.admit(m.changes))
  }
}

/** A chunk's measured texts, one for each of its changes (so that they line up once chunks are joined). */
function padded(r: Received): (string | undefined)[] {
  const out = new Array<string | undefined>(r.m.changes.length)
  for (let k = 0; k < out.length; k++) out[k] = r.docJson[k]
  return out
}
