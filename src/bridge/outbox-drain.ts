import { randomBytes } from 'node:crypto'
import type { Row } from '../repository/repository.js'
import { backoffMs } from '../util/backoff.js'
import { Mutex } from '../util/mutex.js'
import type { AdapterBinding } from './adapter-binding.js'
import { isShutdownError } from './apply-batch.js'
import { type PushGroup, pushLocal } from './local-push.js'
import type { SyncRuntime } from './runtime.js'

/** Applies back documents whose mesh content differs from the local rows after a push. */
export type Reconcile = (model: string, ids: string[]) => Promise<void>

/** Mesh collection of drain marks: per repository, the last batch that sent counter increments. */
export const DRAIN_MARKS = '_meshmirror_drains'
const DRAIN_CHECKPOINT = 'outbox-drain'
/** Documents to apply back from the mesh after acknowledged batches, by model, until that is written. */
const OWED_CHECKPOINT = 'outbox-reconcile'

/** This repository's drain identity and the number of batches it has acknowledged. */
interface DrainState {
  id: string
  n: number
}

/**
 * Sends captured local writes (the outbox) to the mesh: one mesh transaction
 * per batch, then the sync state and the acknowledgement of the batch in one
 * repository transaction. A crash in between sends the batch again, which
 * the mesh takes as a no-op: at least once, and idempotent. Counter
 * increments are not idempotent, so a batch that sends some also writes a
 * mark (its number and last entry) in its mesh transaction; after a crash,
 * a mark one ahead of the acknowledged count says the batch is in the mesh,
 * and it is acknowledged without sending its increments again.
 *
 * A batch sends its rows as they were at its last entry (`rowsAt`), not as
 * they are when it reads them: the app goes on writing meanwhile, and a
 * counter change made after that entry, sent with this batch but
 * acknowledged only with the next, would be counted twice. The same reading
 * makes a batch sent again after a crash identical to the first sending.
 */
export class OutboxDrain {
  private running: Promise<void> | undefined
  private again = false
  private stopped = false
  private failures = 0
  private retryTimer: NodeJS.Timeout | undefined
  private readonly lock = new Mutex()
  /**
   * Documents whose mesh content is to be applied back after a batch was
   * acknowledged (a received change held back from a row while the app's
   * change of it waited here): stored with the acknowledgement, so that a
   * crash before they are written leaves them to the next start.
   */
  private owed = new Map<string, Set<string>>()
  /** The stored list may hold documents: the next acknowledgement rewrites it. */
  private owedStored = true
  private owedGeneration = 0
  private recovered = false

  constructor(
    private readonly rt: SyncRuntime,
    private readonly reconcile: Reconcile,
  ) {}

  /** Drains soon; coalesces requests made while a drain runs. */
  request(): void {
    if (this.stopped) return
    if (this.running) {
      this.again = true
      return
    }
    this.running = this.loop().finally(() => {
      this.running = undefined
    })
  }

  /** Drains until the outbox is empty (for startup and tests). Throws what a drain throws. */
  async drainAll(onProgress?: (done: number, total: number) => void): Promise<number> {
    await this.running
    const models = this.models()
    if (models.length > 0) await this.lock.run(() => this.drainState())
    if (!this.recovered) await this.lock.run(() => this.applyOwed())
    const { count: total } = await this.rt.repository.pendingChangeCount(models)
    let done = 0
    for (;;) {
      const n = await this.drainOnce()
      if (n === 0) return done
      done += n
      onProgress?.(done, Math.max(total, done))
    }
  }

  /** Stops draining; waits for a running drain. */
  async stop(): Promise<void> {
    this.stopped = true
    if (this.retryTimer) clearTimeout(this.retryTimer)
    await this.running
  }

  private async loop(): Promise<void> {
    do {
      this.again = false
      try {
        while (!this.stopped && (await this.drainOnce()) > 0) {
          // Keep going while there is work.
        }
        this.failures = 0
      } catch (error) {
        if (this.stopped && isShutdownError(error)) return
        this.rt.fail('drain', error)
        const wait = backoffMs(this.failures++, { initialMs: 50, maxMs: 5000 })
        this.retryTimer = setTimeout(() => this.request(), wait)
        this.retryTimer.unref()
        return
      }
    } while (this.again && !this.stopped)
  }

  private drain: DrainState | undefined
  // True while every batch this process sent to the mesh has been acknowledged.
  private acknowledged = false

  private async drainState(): Promise<DrainState> {
    if (this.drain) return this.drain
    const repo = this.rt.repository
    const saved = await repo.checkpoint(DRAIN_CHECKPOINT)
    let state: DrainState | undefined
    if (saved !== undefined) {
      const parsed = JSON.parse(saved) as Partial<DrainState>
      if (typeof parsed.id === 'string' && Number.isSafeInteger(parsed.n)) state = parsed as DrainState
    }
    if (state === undefined) {
      // Stored before the first batch is sent: a mark the mesh holds under an identity
      // the repository forgot (a crash before the first acknowledgement) would go unrecognised.
      state = { id: randomBytes(12).toString('base64url').replace(/-/g, '_'), n: 0 }
      const fresh = state
      await repo.transaction((tx) => tx.setCheckpoint(DRAIN_CHECKPOINT, JSON.stringify(fresh)))
    }
    this.drain = state
    return state
  }

  /** Applies back what the last run acknowledged and may not have written (once, at the first drain of all). */
  private async applyOwed(): Promise<void> {
    if (this.recovered) return
    const saved = await this.rt.repository.checkpoint(OWED_CHECKPOINT)
    const owed = new Map<string, Set<string>>()
    if (saved) {
      for (const [model, ids] of Object.entries(JSON.parse(saved) as Record<string, string[]>)) {
        if (this.rt.bindings.get(model)?.receives && ids.length > 0) owed.set(model, new Set(ids))
      }
    }
    this.owedStored = saved !== undefined && saved !== '{}'
    for (const [model, ids] of owed) await this.reconcile(model, [...ids])
    this.owe(owed)
    this.recovered = true
  }

  /** Keeps `owed` listed until every change queued so far is written. */
  private owe(owed: Map<string, Set<string>>): void {
    this.owed = owed
    if (owed.size === 0) return
    const generation = ++this.owedGeneration
    void this.rt.queue.idle().then(() => {
      if (generation === this.owedGeneration) this.owed = new Map()
    })
  }

  private models(): string[] {
    return [...this.rt.bindings.values()].filter((b) => b.sends).map((b) => b.model)
  }

  /** Sends one batch. Returns how many outbox entries it covered. */
  drainOnce(): Promise<number> {
    return this.lock.run(() => this.sendBatch())
  }

  private async sendBatch(): Promise<number> {
    const rt = this.rt
    const repo = rt.repository
    const models = this.models()
    if (models.length === 0) return 0
    let entries = await repo.pendingChanges({ models, limit: rt.settings.drainBatchSize })
    if (entries.length === 0) return 0
    const drain = await this.drainState()
    // Only a batch whose acknowledgement this process has not seen can have been left
    // in the mesh unacknowledged: the first one after start, or one that failed.
    const mark = this.acknowledged ? undefined : await rt.mesh.get(DRAIN_MARKS, drain.id)
    // The mesh committed batch n + 1 (with its increments), the acknowledgement did not happen.
    const committed = mark !== undefined && mark.n === drain.n + 1 && typeof mark.upTo === 'number' ? mark.upTo : null
    if (committed !== null) entries = entries.filter((e) => e.seq <= committed)
    if (entries.length === 0) return 0
    const upTo = committed ?? entries[entries.length - 1]!.seq
    let oldestAt = Number.POSITIVE_INFINITY
    // Per model, per row: the row before the first captured change (the base of what the app changed).
    const byModel = new Map<string, Map<string, Row | null>>()
    // Per model, the rows the app deleted, as they were: removals parked on them may go now.
    const removed = new Map<string, Row[]>()
    for (const e of entries) {
      if (e.at < oldestAt) oldestAt = e.at
      if (e.op === 'delete' && e.old) {
        const list = removed.get(e.model)
        if (list) list.push(e.old)
        else removed.set(e.model, [e.old])
      }
      let ids = byModel.get(e.model)
      if (!ids) {
        ids = new Map()
        byModel.set(e.model, ids)
      }
      if (!ids.has(e.id)) ids.set(e.id, e.op === 'upsert' ? e.old : null)
    }
    const groups: PushGroup[] = []
    for (const [model, bases] of byModel) {
      const binding = rt.bindings.get(model) as AdapterBinding
      const ids = [...bases.keys()]
      // The rows as of the batch's last entry: a later change of one of them is not
      // acknowledged with this batch, so it must not be sent with it either.
      const rows = repo.rowsAt ? await repo.rowsAt(model, ids, upTo) : await repo.getMany(model, ids)
      const stored = rt.keepBaseDocs ? await repo.syncStates(model, ids) : await rt.states.lookup(model, ids)
      groups.push({ binding, docs: ids.map((id) => ({ id, row: rows.get(id), base: bases.get(id) ?? null })), stored })
    }
    this.acknowledged = false
    const result = await pushLocal(
      rt,
      groups,
      committed !== null
        ? { skipIncrements: true }
        : { mark: { collection: DRAIN_MARKS, doc: { _id: drain.id, n: drain.n + 1, upTo } } },
    )
    // What is still owed, and what this batch's acknowledgement leaves to apply back.
    const owed = new Map([...this.owed].map(([model, ids]) => [model, new Set(ids)]))
    for (const [model, ids] of result.reconcile) {
      const set = owed.get(model) ?? new Set<string>()
      for (const id of ids) set.add(id)
      owed.set(model, set)
    }
    const storeOwed = owed.size > 0 || this.owedStored
    try {
      await repo.transaction(async (tx) => {
        for (const [model, states] of result.states) await tx.putSyncStates(model, states)
        await tx.acknowledge(upTo, models)
        await tx.setCheckpoint(DRAIN_CHECKPOINT, JSON.stringify({ id: drain.id, n: drain.n + 1 }))
        if (storeOwed) {
          await tx.setCheckpoint(
            OWED_CHECKPOINT,
            JSON.stringify(Object.fromEntries([...owed].map(([model, ids]) => [model, [...ids]]))),
          )
        }
      })
      if (storeOwed) this.owedStored = owed.size > 0
      this.drain = { id: drain.id, n: drain.n + 1 }
      this.acknowledged = true
      for (const [model, states] of result.states) rt.states.record(model, states)
    } finally {
      result.release()
    }
    rt.metrics.localLagMs(Math.max(0, Date.now() - oldestAt))
    rt.events.emit('pushed', {
      upserts: result.upserts,
      removals: result.removals,
      unchanged: result.unchanged,
      models: [...byModel.keys()],
    })
    for (const [model, ids] of result.reconcile) await this.reconcile(model, ids)
    this.owe(owed)
    // Rows the app wrote may be the parents parked documents wait for, and rows it
    // deleted the children parked removals wait for.
    if (repo.unblockedBy) {
      for (const g of groups) {
        const rows = g.docs.flatMap((d) => (d.row ? [d.row] : []))
        const gone = removed.get(g.binding.model) ?? []
        for (const [model, ids] of await repo.unblockedBy(g.binding.model, rows, gone)) rt.retry(model, ids)
      }
    }
    return entries.length
  }
}
