import type { Observer } from '../mesh/mesh-store.js'
import { backoffMs } from '../util/backoff.js'
import type { AdapterBinding } from './adapter-binding.js'
import { isShutdownError } from './apply-batch.js'
import { type CatchUpReport, pull } from './catch-up.js'
import { ingest } from './remote-intake.js'
import type { SyncRuntime } from './runtime.js'

/**
 * Keeps each receiving adapter reading its scope's changes: an observer
 * signals them (and holds the mesh back while they are taken in), a poll of
 * the change feed catches what no delivery announced, and a failed read is
 * retried with backoff.
 */
export class ScopeFollower {
  private readonly retryTimers = new Map<string, NodeJS.Timeout>()
  private poller: NodeJS.Timeout | undefined
  private offCommit: (() => void) | undefined
  private stopped = false

  constructor(private readonly rt: SyncRuntime) {}

  /**
   * Starts following a scope: sets where to read from (the stored cursor, or,
   * without a catch-up, the current end of the change feed), registers the
   * observer, then reads what is there. Reading the starting point before
   * registering and pulling right after leaves no gap.
   */
  async follow(binding: AdapterBinding, catchUp: boolean, onProgress?: (done: number) => void): Promise<CatchUpReport> {
    binding.cursor = catchUp
      ? ((await this.rt.repository.checkpoint(binding.cursorKey)) ?? null)
      : await this.rt.mesh.currentCursor()
    binding.persistCursor = catchUp
    const query = { collection: binding.collection, filter: binding.filter ?? {} }
    const observer: Observer = this.rt.mesh.observe(query, () => this.onSignal(binding, observer), {
      onError: (error) => this.rt.fail('observe', error, binding.model),
    })
    binding.observer = observer
    await observer.ready
    return pull(this.rt, binding, onProgress)
  }

  /** Stops a binding's observer and waits for what it is taking in. */
  async unfollow(binding: AdapterBinding): Promise<void> {
    binding.observer?.cancel()
    binding.observer = undefined
    await binding.run(async () => undefined)
  }

  /**
   * Starts checking the change feed for changes no delivery announced:
   * `pollIntervalMs` after each commit on a mesh that announces its commits
   * (the builtin engine), so an idle bridge wakes for nothing; every
   * `pollIntervalMs` on one that does not (Ditto, whose sync writes inside
   * its SDK).
   */
  startPolling(): void {
    const interval = this.rt.settings.pollIntervalMs
    if (interval <= 0 || this.poller || this.offCommit || this.stopped) return
    const mesh = this.rt.mesh
    if (mesh.onCommit) {
      this.offCommit = mesh.onCommit(() => this.checkAfter(interval))
      return
    }
    this.poller = setInterval(() => this.checkFeed(), interval)
    this.poller.unref()
  }

  /** Stops polling and retries (observers are stopped with `unfollow`). */
  stop(): void {
    this.stopped = true
    this.offCommit?.()
    this.offCommit = undefined
    if (this.poller) clearInterval(this.poller)
    for (const t of this.retryTimers.values()) clearTimeout(t)
    this.retryTimers.clear()
  }

  /** One check `ms` from now, unless one is already due. */
  private checkAfter(ms: number): void {
    if (this.poller || this.stopped) return
    this.poller = setTimeout(() => {
      this.poller = undefined
      // A binding busy or waiting for a retry is checked again later: no further commit may come to ask.
      if (this.checkFeed()) this.checkAfter(ms)
    }, ms)
    this.poller.unref()
  }

  /** Pulls each receiving binding the feed moved past; true when one could not be checked now. */
  private checkFeed(): boolean {
    let deferred = false
    for (const b of this.rt.bindings.values()) {
      if (!b.receives || b.cursor === undefined) continue
      if (b.busy || this.retryTimers.has(b.model)) {
        deferred = true
        continue
      }
      void this.rt.mesh
        .currentCursor()
        .then((end) => (end !== b.cursor && !b.busy ? pull(this.rt, b) : undefined))
        .catch((error) => this.failed(b, error, 0))
    }
    return deferred
  }

  /** Applies the mesh's current content of some documents (after a push, or on first contact). */
  readonly reconcile = async (model: string, ids: string[], options: { checkRows?: boolean } = {}): Promise<void> => {
    const binding = this.rt.bindings.get(model)
    if (!binding?.receives || ids.length === 0) return
    await binding.run(async () => {
      const window = this.rt.overlap.beginRead()
      try {
        const docs = await this.rt.mesh.find({ collection: binding.collection, filter: { _id: { $in: ids } } })
        const found = new Set(docs.map((d) => d._id))
        const removals = ids.filter((id) => !found.has(id)).map((id) => ({ id }))
        await ingest(this.rt, binding, docs, removals, { window, ...(options.checkRows ? { checkRows: true } : {}) })
      } finally {
        this.rt.overlap.endRead(window)
      }
    })
  }

  /** A delivery says the scope changed: read the changes. The mesh holds further deliveries until this resolves. */
  private async onSignal(binding: AdapterBinding, observer: Observer): Promise<void> {
    if (binding.observer !== observer) return
    try {
      await pull(this.rt, binding)
    } catch (error) {
      this.failed(binding, error, 0)
    }
  }

  private failed(binding: AdapterBinding, error: unknown, attempt: number): void {
    if (this.stopped && isShutdownError(error)) return
    this.rt.fail('observe', error, binding.model)
    this.scheduleRetry(binding, attempt)
  }

  /** After a failed read: read again with backoff, even if no further change signals it. */
  private scheduleRetry(binding: AdapterBinding, attempt: number): void {
    if (this.retryTimers.has(binding.model) || this.stopped) return
    const timer = setTimeout(
      async () => {
        this.retryTimers.delete(binding.model)
        try {
          await pull(this.rt, binding)
        } catch (error) {
          this.failed(binding, error, attempt + 1)
        }
      },
      backoffMs(attempt, { initialMs: 50, maxMs: 5000 }),
    )
    timer.unref()
    this.retryTimers.set(binding.model, timer)
  }
}
