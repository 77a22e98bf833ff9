import type { BuiltinMesh, VersionVector } from '../engine/types.js'
import type { MeshmirrorError } from '../errors.js'
import type { Message } from './protocol.js'

type Changes = Extract<Message, { t: 'changes' }>

/** Most changes one chunk may carry. */
export const MAX_CHANGES_PER_CHUNK = 10_000

export interface InboundOptions {
  mesh: BuiltinMesh
  /** The sending peer's site id (its cursor is recorded under it). */
  from: string
  window: number
  sendAck(n: number, cursor: number): void
  /** A chunk completed a catch-up: the peer held `vv` when it sent it. */
  onComplete(vv: VersionVector | undefined): void
  /** The chunk broke the protocol or failed validation: drop the link. Nothing of it was applied. */
  onReject(reason: string, error?: MeshmirrorError): void
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

  constructor(private readonly o: InboundOptions) {}

  receive(m: Changes): void {
    if (m.n <= this.received) {
      this.duplicates++
      return
    }
    if (m.n !== this.received + 1) {
      this.o.onReject(`chunk ${m.n} arrived after chunk ${this.received}: out of order`)
      return
    }
    if (m.changes.length > MAX_CHANGES_PER_CHUNK) {
      this.o.onReject(`chunk of ${m.changes.length} changes (limit ${MAX_CHANGES_PER_CHUNK})`)
      return
    }
    // A peer that ignores flow control is flooding.
    if (m.n - this.applied > this.o.window + 2) {
      this.o.onReject(`${m.n - this.applied} unacknowledged chunks (window ${this.o.window})`)
      return
    }
    this.received = m.n
    this.chain = this.chain.then(() => this.apply(m))
  }

  private async apply(m: Changes): Promise<void> {
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
      this.o.onReject(`rejected changes (${e.code ?? 'ERROR'}): ${e.message}`, e)
      return
    }
    if (this.o.isClosed()) return
    this.applied = m.n
    this.changesReceived += m.changes.length
    this.o.sendAck(m.n, m.cursor)
    if (m.complete) this.o.onComplete(m.vv)
  }
}
