import type { Row } from '../repository/repository.js'
import { backoffMs } from '../util/backoff.js'
import { delay } from '../util/delay.js'

/** Tallies of one restore, filled in as its rows are written. */
export interface ApplyTally {
  applied: number
  unchanged: number
  deferred: number
  rejected: number
}

/** A remote change waiting to be written to the repository. */
export interface ApplyItem {
  model: string
  id: string
  /**
   * `refuse` keeps a document the adapter refused (malformed, not fitting
   * the table) in the repository's list of refused documents, with the
   * checkpoint that moves past it.
   */
  kind: 'upsert' | 'delete' | 'refuse'
  /** The record to write (upserts). */
  record?: Row
  /** Why it was refused (`refuse`). */
  refusal?: { reason: string; code?: string }
  /** Content hash recorded in the sync state once written. */
  hash: string
  /** Canonical JSON of the document (null for removals). */
  doc: string | null
  /** When it was received (performance.now()). */
  receivedAt: number
  /** Counts its outcome into a restore's report. */
  tally?: ApplyTally
  /**
   * Read from the mesh before a local push of the document began: held back
   * when written (the document is read again after the push).
   */
  superseded?: boolean
}

/** A checkpoint (mesh cursor) to commit once every change queued before it is written. */
export interface CheckpointMark {
  key: string
  value: string
}

export interface ApplyQueueOptions {
  batchSize: number
  maxBatchDelayMs: number
  delayBetweenBatches: number
  transactionPerRow: boolean
  highWaterMark: number
  /**
   * How long a batch's transaction may take before later batches are made
   * smaller (halved, down to MIN_BATCH; doubled again, up to `batchSize`,
   * after quick ones). 0: batches are always up to `batchSize`.
   */
  targetBatchMs?: number
  /** Writes one batch in one transaction, with the marks it makes safe; resolves to how long it held the write lock (ms), if known. */
  write(items: ApplyItem[], marks: CheckpointMark[]): Promise<number | undefined> | Promise<void>
  /** A batch failed; it is retried after `retryInMs`. */
  onError(error: unknown, retryInMs: number): void
  /** True when a failure is final (shutting down): the batch is dropped, not retried. */
  isFatal(error: unknown): boolean
}

interface Entry {
  item: ApplyItem
  ticket: number
  queuedAt: number
}

const key = (model: string, id: string) => `${model}\u0000${id}`

/** Longest a checkpoint waits for changes to be written with. */
const MARK_DELAY_MS = 1000
/** Smallest batch the size adaptation goes down to. */
const MIN_BATCH = 16
/** The first batch's most changes when batches adapt: a cold start (a catch-up after a restart) grows from here. */
const START_BATCH = 64
/** How much of the slowest time per change the next batch still counts (see `adapt`). */
const WORST_DECAY = 0.9

/**
 * The single writer of received changes. Coalesces by document (the latest
 * change wins), writes one transaction per batch bounded by size and time,
 * and tells producers to wait (`belowHighWater`) when it falls behind.
 *
 * Checkpoints ride along: a mark is written in the transaction that writes
 * the last change queued before it, so a stored cursor never runs ahead of
 * the data it covers.
 *
 * Batches shrink when their transactions take long (rows whose foreign keys
 * make SQLite scan a table, a loaded machine): the application waits for the
 * write lock no longer than one transaction, and its busy timeout is not
 * spent on one batch.
 */
export class ApplyQueue {
  private pending = new Map<string, Entry>()
  private inflight = new Map<string, ApplyItem>()
  private marks: { mark: CheckpointMark; ticket: number; at: number }[] = []
  private ticket = 0
  /** The current most changes per batch (see `targetBatchMs`). */
  private cap: number
  private running = false
  private closed = false
  /** Marks stay queued, not written (see `holdMarks`). */
  private marksHeld = false
  /**
   * A batch was dropped (closing, or a fatal error): no mark is written from
   * then on, since each later one would also move past the dropped changes.
   */
  private marksLost = false
  private wake: (() => void) | undefined
  private readonly idleWaiters: (() => void)[] = []
  private readonly roomWaiters: (() => void)[] = []

  constructor(private readonly opts: ApplyQueueOptions) {
    this.cap = (opts.targetBatchMs ?? 0) > 0 ? Math.min(opts.batchSize, START_BATCH) : opts.batchSize
  }

  /** The most changes the next batch takes (at most `batchSize`). */
  get batchCap(): number {
    return this.cap
  }

  /** Changes queued or being written. */
  get depth(): number {
    return this.pending.size + this.inflight.size
  }

  /** The queued (or being written) change for a document, if any: the latest known content. */
  find(model: string, id: string): ApplyItem | undefined {
    const k = key(model, id)
    return this.pending.get(k)?.item ?? this.inflight.get(k)
  }

  put(item: ApplyItem): void {
    const k = key(item.model, item.id)
    const queued = this.pending.get(k)
    // Coalesce in place: the newer content keeps the older position, so a
    // mark queued after the older content also waits for the newer one.
    if (queued) queued.item = item
    else this.pending.set(k, { item, ticket: ++this.ticket, queuedAt: performance.now() })
    // A change ends a wait of checkpoints alone; a full batch ends any wait.
    if (this.pending.size === 1 || this.pending.size >= this.cap) this.wake?.()
    this.pump()
  }

  mark(mark: CheckpointMark): void {
    if (this.marksLost) return
    this.marks.push({ mark, ticket: this.ticket, at: performance.now() })
    this.pump()
  }

  /**
   * While held, checkpoints are kept and not written: something read before
   * them is still to be taken in (a document read again after a local push).
   * Released, they wait for every change queued until then, as if marked now.
   */
  holdMarks(on: boolean): void {
    if (on === this.marksHeld) return
    this.marksHeld = on
    if (on) return
    for (const m of this.marks) m.ticket = this.ticket
    this.pump()
  }

  /** Checkpoints that may be written now. */
  private get marksReady(): boolean {
    return this.marks.length > 0 && !this.marksHeld
  }

  /** Resolves when the queue is below its high-water mark. */
  belowHighWater(): Promise<void> {
    if (this.depth < this.opts.highWaterMark) return Promise.resolve()
    return new Promise((resolve) => this.roomWaiters.push(resolve))
  }

  /**
   * Resolves when every change queued so far is written (or dropped at
   * shutdown). Checkpoints without changes may still wait to ride along with
   * later changes; `close()` writes them.
   */
  idle(): Promise<void> {
    if (this.pending.size === 0 && this.inflight.size === 0) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  private releaseIdle(): void {
    if (this.pending.size === 0 && this.inflight.size === 0) for (const w of this.idleWaiters.splice(0)) w()
  }

  /** Writes what is queued without waiting for batches to fill, then stops accepting time-based waits. */
  async close(): Promise<void> {
    this.closed = true
    this.wake?.()
    await this.idle()
  }

  private pump(): void {
    if (this.running) return
    this.running = true
    void this.run()
  }

  /** When the last batch write started or ended (performance.now()); a quiet queue writes a change at once. */
  private lastWriteAt = Number.NEGATIVE_INFINITY

  private async run(): Promise<void> {
    let failures = 0
    try {
      while (this.pending.size > 0 || this.marksReady) {
        await this.waitForBatch()
        const { items, marks } = this.take()
        // Only checkpoints were waiting, and they are held now.
        if (items.length === 0 && marks.length === 0) continue
        this.lastWriteAt = performance.now()
        try {
          if (this.opts.transactionPerRow && items.length > 1) {
            for (let i = 0; i < items.length; i++) {
              await this.opts.write([items[i]!], i === items.length - 1 ? marks : [])
              this.inflight.delete(key(items[i]!.model, items[i]!.id))
            }
          } else {
            const t0 = performance.now()
            const heldMs = await this.opts.write(items, marks)
            // The time the lock was held when the writer knows it: waiting for it (the app holding
            // it, the pause left for the app) says nothing about how long these changes take.
            this.adapt(items.length, typeof heldMs === 'number' ? heldMs : performance.now() - t0)
          }
          failures = 0
          this.lastWriteAt = performance.now()
        } catch (error) {
          // Closing: a failing batch is not retried (its checkpoint did not move, so the next start applies it again).
          if (this.opts.isFatal(error) || this.closed) {
            this.opts.onError(error, -1)
            this.marksLost = true
            this.marks = []
          } else {
            const retryInMs = backoffMs(failures++, { initialMs: 10, maxMs: 1000 })
            this.opts.onError(error, retryInMs)
            this.restore(items, marks)
            this.inflight.clear()
            await delay(retryInMs)
            continue
          }
        }
        this.inflight.clear()
        this.releaseRoom()
        this.releaseIdle()
        if (this.opts.delayBetweenBatches > 0 && this.pending.size > 0) await delay(this.opts.delayBetweenBatches)
      }
    } finally {
      this.running = false
      this.inflight.clear()
      this.releaseRoom()
      this.releaseIdle()
      // A put() that raced the end of the loop.
      if (this.pending.size > 0 || this.marksReady) this.pump()
    }
  }

  /**
   * Waits until a batch is full, the oldest change is `maxBatchDelayMs` old,
   * or the queue closes. After a quiet spell (no batch written for
   * `maxBatchDelayMs`) a change is written at once: waiting for a batch to
   * fill pays while changes stream in, and only adds latency to a lone one. Checkpoints alone wait up to `MARK_DELAY_MS` for
   * changes to ride with, so that idle periods do not cost a transaction per
   * checkpoint.
   */
  private async waitForBatch(): Promise<void> {
    for (;;) {
      if (this.closed || this.pending.size >= this.cap) return
      let wait: number
      if (this.pending.size === 0) {
        if (!this.marksReady) return
        this.releaseIdle()
        wait = MARK_DELAY_MS - (performance.now() - this.marks[0]!.at)
      } else {
        const now = performance.now()
        if (now - this.lastWriteAt >= this.opts.maxBatchDelayMs) return
        const oldest = this.pending.values().next().value as Entry
        wait = this.opts.maxBatchDelayMs - (now - oldest.queuedAt)
      }
      if (wait <= 0) return
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, wait)
        function done() {
          clearTimeout(timer)
          resolve()
        }
        this.wake = done
      })
      this.wake = undefined
    }
  }

  private take(): { items: ApplyItem[]; marks: CheckpointMark[] } {
    const items: ApplyItem[] = []
    for (const [k, e] of this.pending) {
      if (items.length >= this.cap) break
      items.push(e.item)
      this.inflight.set(k, e.item)
      this.pending.delete(k)
    }
    if (this.marksHeld || this.marksLost) return { items, marks: [] }
    // Marks whose every earlier change is in this batch (or already written).
    const next = this.pending.values().next().value as Entry | undefined
    const limit = next === undefined ? Number.POSITIVE_INFINITY : next.ticket
    // The latest value of each key is enough.
    const marks = new Map<string, CheckpointMark>()
    while (this.marks.length > 0 && this.marks[0]!.ticket < limit) {
      const { mark } = this.marks.shift()!
      marks.delete(mark.key)
      marks.set(mark.key, mark)
    }
    return { items, marks: [...marks.values()] }
  }

  /** The slowest recent time per change (ms), decaying by WORST_DECAY a batch. */
  private worstMsPerItem = 0

  /**
   * Sets the batch cap to what the target allows at the slowest recent time
   * per change. What a change costs varies a hundredfold (an insert, or the
   * removal of a parent whose children SQLite reads without an index), so a
   * slow batch is remembered for a while: the cap comes back up over tens
   * of batches, at most doubling each time, not at the first quick ones.
   */
  private adapt(size: number, ms: number): void {
    const target = this.opts.targetBatchMs ?? 0
    if (target <= 0 || size === 0) return
    this.worstMsPerItem = Math.max(ms / size, this.worstMsPerItem * WORST_DECAY)
    const fits = this.worstMsPerItem > 0 ? Math.floor(target / this.worstMsPerItem) : this.opts.batchSize
    // Only a full batch shows that a bigger one would be quick too.
    const ceiling = size >= this.cap ? this.cap * 2 : this.cap
    this.cap = Math.max(MIN_BATCH, Math.min(this.opts.batchSize, fits, ceiling))
  }

  /** Puts a failed batch back in front, unless newer changes of the same documents arrived. */
  private restore(items: ApplyItem[], marks: CheckpointMark[]): void {
    const front = new Map<string, Entry>()
    for (const item of items) {
      const k = key(item.model, item.id)
      if (!this.pending.has(k)) front.set(k, { item, ticket: 0, queuedAt: performance.now() })
    }
    this.pending = new Map([...front, ...this.pending])
    this.marks.unshift(...marks.map((mark) => ({ mark, ticket: 0, at: performance.now() })))
  }

  private releaseRoom(): void {
    if (this.depth >= this.opts.highWaterMark) return
    for (const w of this.roomWaiters.splice(0)) w()
  }
}
