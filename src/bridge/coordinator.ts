import { AbortError, ClosedError, ErrorCode, ValidationError } from '../errors.js'
import { type Logger, silentLogger } from '../logger.js'
import type { MeshStore } from '../mesh/mesh-store.js'
import type { Repository, Row } from '../repository/repository.js'
import { Emitter } from '../util/emitter.js'
import { Mutex } from '../util/mutex.js'
import type { SyncAdapter, SyncContext } from './adapter.js'
import { AdapterBinding } from './adapter-binding.js'
import { checkAdapter } from './adapter-check.js'
import { applyBatch, isShutdownError } from './apply-batch.js'
import { ApplyQueue } from './apply-queue.js'
import { type RestoreOptions, type RestoreReport, restoreFromMesh } from './backup-restore.js'
import { type CatchUpReport, pull } from './catch-up.js'
import { verifyAgainstMesh } from './drift-check.js'
import type { VerifyOptions, VerifyReport } from './drift-report.js'
import type { CoordinatorState, SyncEventListener, SyncEvents, SyncPhase } from './events.js'
import { type NotifyResult, notifyDelete, notifyUpsert } from './local-notify.js'
import { MetricsRecorder, type SyncMetrics } from './metrics.js'
import { OutboxDrain } from './outbox-drain.js'
import { PushOverlap } from './push-overlap.js'
import { messageOf, type SyncRuntime } from './runtime.js'
import { ScopeFollower } from './scope-follower.js'
import { type SeedReport, seed } from './seeder.js'
import { resolveSettings, type SyncSettings } from './settings.js'
import { settle } from './shutdown.js'
import { bringUpToDate, type StartupReport } from './startup.js'
import { StateCache } from './state-cache.js'

export interface SyncCoordinatorOptions {
  mesh: MeshStore
  repository: Repository
  adapters?: readonly SyncAdapter[]
  /** Initial context (e.g. `{ branchId: 1 }`). */
  context?: SyncContext
  settings?: SyncSettings
  logger?: Logger
}

/**
 * Keeps a repository and the mesh in step for a set of adapters: applies
 * remote changes (observed, detected by content hash, queued and written in
 * batches by a single writer), sends local changes (captured by the
 * repository, or notified), follows context changes, restores backups, and
 * reports metrics and events.
 *
 * @example
 * ```ts
 * const sync = createSyncCoordinator({ mesh, repository, adapters: [counters], context: { branchId: 1 } })
 * sync.on('rejected', (r) => log.warn(r.message))
 * await sync.start()
 * await sync.setContext({ branchId: 2 })
 * await sync.close()
 * ```
 */
export interface SyncCoordinator extends AsyncDisposable {
  readonly state: CoordinatorState
  /** Adds an adapter. Registering the same adapter again does nothing. Before start() only. */
  register(adapter: SyncAdapter): void
  adapters(): SyncAdapter[]
  /** Catches up, sends captured changes, seeds, then stays live. Memoised; retryable after a failure. */
  start(options?: { signal?: AbortSignal }): Promise<StartupReport>
  context(): SyncContext
  /** Switches context (e.g. the user changes branch): re-scopes observers and catches up the new scope. */
  setContext(context: SyncContext): Promise<void>
  /** Sends a record the app wrote, for repositories without change capture. Echoes are recognised by content. */
  notifyLocalUpsert(model: string, record: Row): Promise<NotifyResult>
  notifyLocalDelete(model: string, id: string): Promise<NotifyResult>
  /** Restores a model's documents (and linked ones) from the mesh into the repository. */
  restore(model: string, options?: RestoreOptions): Promise<RestoreReport>
  /** Catches up one model, or all, with what changed in the mesh since their cursors. */
  catchUp(model?: string): Promise<Record<string, CatchUpReport>>
  /** Seeds rows never exchanged with the mesh. */
  seed(model?: string): Promise<Record<string, SeedReport>>
  /** Sends every captured local change and writes every queued remote change. */
  flush(): Promise<void>
  /**
   * Compares what the device exchanged with what the mesh holds, and applies
   * again from the mesh what is out of step (see the bridge documentation).
   */
  verify(options?: VerifyOptions): Promise<VerifyReport>
  metrics(): SyncMetrics
  on<E extends keyof SyncEvents>(event: E, listener: SyncEventListener<E>): () => void
  /** Stops observing, writes what is queued, records where it stopped. Idempotent. */
  close(): Promise<void>
}

/** Creates a coordinator. Nothing happens until `start()`. */
export function createSyncCoordinator(options: SyncCoordinatorOptions): SyncCoordinator {
  if (typeof options !== 'object' || options === null || !options.mesh || !options.repository) {
    throw new ValidationError(ErrorCode.INVALID_OPTIONS, 'createSyncCoordinator needs a mesh and a repository.')
  }
  const coordinator = new Coordinator(options)
  for (const adapter of options.adapters ?? []) coordinator.register(adapter)
  return coordinator
}

class Coordinator implements SyncCoordinator {
  private readonly rt: SyncRuntime
  private readonly bindings = new Map<string, AdapterBinding>()
  private readonly events: Emitter<SyncEvents>
  private readonly metricsRecorder = new MetricsRecorder()
  private readonly queue: ApplyQueue
  private readonly drain: OutboxDrain
  private readonly follower: ScopeFollower
  private readonly lifecycle = new Mutex()
  private readonly stopController = new AbortController()
  private readonly shutdownController = new AbortController()
  private readonly unsubscribe: (() => void)[] = []
  private ctx: SyncContext
  private current: CoordinatorState = 'idle'
  private starting: Promise<StartupReport> | undefined
  private verifier: NodeJS.Timeout | undefined
  private verifying: Promise<VerifyReport> | undefined
  private closing: Promise<void> | undefined

  constructor(options: SyncCoordinatorOptions) {
    const settings = resolveSettings(options.settings)
    const logger = options.logger ?? silentLogger
    this.ctx = { ...(options.context ?? {}) }
    this.events = new Emitter<SyncEvents>(logger)
    this.queue = new ApplyQueue({
      ...settings,
      write: (items, marks) => applyBatch(this.rt, items, marks),
      onError: (error) => this.fail('apply', error),
      isFatal: isShutdownError,
    })
    const pushes = new Map<string, string>()
    this.rt = {
      mesh: options.mesh,
      repository: options.repository,
      settings,
      queue: this.queue,
      metrics: this.metricsRecorder,
      events: this.events,
      logger,
      bindings: this.bindings,
      pushes,
      overlap: new PushOverlap(
        pushes,
        // Without change capture nothing holds a received change back from a row the app edited
        // while its push was underway: the second read compares with the row itself.
        (model, ids) =>
          this.follower
            .reconcile(model, ids, { checkRows: !options.repository.capturesChanges })
            .catch((error) => this.fail('apply', error, model)),
        (on) => this.queue.holdMarks(on),
      ),
      keepBaseDocs: !options.repository.capturesChanges,
      states: new StateCache(options.repository),
      stopping: this.stopController.signal,
      shutdown: this.shutdownController.signal,
      context: () => this.ctx,
      fail: (phase, error, model) => this.fail(phase, error, model),
      retry: (model, ids) => {
        this.follower.reconcile(model, ids).catch((error) => this.fail('apply', error, model))
      },
      reject: (model, id, direction, reason, error) => {
        this.metricsRecorder.reject(model, reason)
        this.events.emit('rejected', { model, id, direction, reason, message: messageOf(error), error })
      },
    }
    this.follower = new ScopeFollower(this.rt)
    this.drain = new OutboxDrain(this.rt, this.follower.reconcile)
    this.unsubscribe.push(
      options.repository.on('busy', ({ attempt, waitMs }) => {
        this.metricsRecorder.busyRetries++
        this.events.emit('busy', { attempt, waitMs })
      }),
      options.repository.on('longTransaction', (t) => {
        this.metricsRecorder.longTransaction(t.heldMs)
        this.rt.logger.warn(
          `held the database's write lock for ${t.heldMs} ms (${t.cpuMs} ms of CPU, commit ${t.commitMs} ms): the app's writes waited as long`,
          { ...t },
        )
        this.events.emit('longTransaction', t)
      }),
    )
  }

  get state(): CoordinatorState {
    return this.current
  }

  private setState(state: CoordinatorState): void {
    this.current = state
    this.events.emit('state', { state })
  }

  register(adapter: SyncAdapter): void {
    const existing = this.bindings.get(adapter?.model)
    if (existing && existing.adapter === adapter) return
    if (this.current !== 'idle') {
      throw new ValidationError(ErrorCode.INVALID_OPTIONS, 'Register adapters before start().')
    }
    checkAdapter(
      adapter,
      this.rt.repository,
      [...this.bindings.values()].map((b) => b.adapter),
    )
    this.bindings.set(adapter.model, new AdapterBinding(adapter))
  }

  adapters(): SyncAdapter[] {
    return [...this.bindings.values()].map((b) => b.adapter)
  }

  context(): SyncContext {
    return this.ctx
  }

  // ---- startup ---------------------------------------------------------------------

  start(options: { signal?: AbortSignal } = {}): Promise<StartupReport> {
    if (this.closing) return Promise.reject(this.closedError())
    this.starting ??= this.lifecycle
      .run(() => this.startup(options.signal))
      .catch(async (error) => {
        this.starting = undefined
        for (const b of this.bindings.values()) await this.follower.unfollow(b)
        if (this.current === 'starting') this.setState('idle')
        throw error
      })
    return this.starting
  }

  private async startup(signal: AbortSignal | undefined): Promise<StartupReport> {
    const t0 = performance.now()
    this.setState('starting')
    const report = await bringUpToDate({
      rt: this.rt,
      bindings: this.bindings,
      follower: this.follower,
      drain: this.drain,
      checkpoint: () => {
        // A DOMException from signal.throwIfAborted() would escape the MeshmirrorError contract.
        if (signal?.aborted) throw new AbortError(signal.reason)
        if (this.stopController.signal.aborted) throw new AbortError('closed during startup')
      },
    })
    this.goLive()
    report.durationMs = performance.now() - t0
    this.setState('live')
    return report
  }

  /** From now on, captured local changes are sent as they come and the mesh is followed. */
  private goLive(): void {
    const repo = this.rt.repository
    if (repo.capturesChanges) this.unsubscribe.push(repo.onChanges(() => this.drain.request()))
    this.drain.request()
    this.follower.startPolling()
    const every = this.rt.settings.verifyIntervalMs
    if (every > 0) {
      this.verifier = setInterval(() => {
        this.verify().catch((error) => {
          if (!this.closing) this.fail('verify', error)
        })
      }, every)
      this.verifier.unref()
    }
  }

  // ---- context ---------------------------------------------------------------------

  setContext(context: SyncContext): Promise<void> {
    if (this.closing) return Promise.reject(this.closedError())
    if (typeof context !== 'object' || context === null) {
      return Promise.reject(new ValidationError(ErrorCode.INVALID_OPTIONS, 'setContext expects an object.'))
    }
    return this.lifecycle.run(async () => {
      const previous = this.ctx
      this.ctx = { ...context }
      const models: string[] = []
      const live = this.current === 'live'
      for (const b of this.bindings.values()) {
        if (!live) continue
        if (!b.updateScope(this.ctx)) continue
        models.push(b.model)
        await this.follower.unfollow(b)
        if (!b.receives) continue
        // The new scope catches up from its own stored cursor (the first time: all of it).
        await this.follower.follow(b, true, (done) =>
          this.events.emit('progress', { phase: 'catch-up', model: b.model, done }),
        )
      }
      await this.queue.idle()
      this.events.emit('context', { context: this.ctx, previous, models })
    })
  }

  // ---- local changes without capture --------------------------------------------------

  async notifyLocalUpsert(model: string, record: Row): Promise<NotifyResult> {
    this.assertOpen()
    return notifyUpsert(this.rt, this.binding(model), record, this.follower.reconcile)
  }

  async notifyLocalDelete(model: string, id: string): Promise<NotifyResult> {
    this.assertOpen()
    return notifyDelete(this.rt, this.binding(model), id, this.follower.reconcile)
  }

  // ---- explicit operations -----------------------------------------------------------

  async restore(model: string, options?: RestoreOptions): Promise<RestoreReport> {
    this.assertOpen()
    return restoreFromMesh(this.rt, model, options, (m, done) =>
      this.events.emit('progress', { phase: 'restore', model: m, done }),
    )
  }

  async catchUp(model?: string): Promise<Record<string, CatchUpReport>> {
    this.assertOpen()
    const out: Record<string, CatchUpReport> = {}
    for (const b of model === undefined ? this.bindings.values() : [this.binding(model)]) {
      if (b.receives) out[b.model] = await pull(this.rt, b)
    }
    await this.queue.idle()
    return out
  }

  async seed(model?: string): Promise<Record<string, SeedReport>> {
    this.assertOpen()
    const out: Record<string, SeedReport> = {}
    for (const b of model === undefined ? this.bindings.values() : [this.binding(model)]) {
      out[b.model] = await seed(this.rt, b, this.follower.reconcile)
    }
    await this.queue.idle()
    return out
  }

  /**
   * Compares every received document's exchanged state with the mesh and,
   * unless `repair: false`, applies again from the mesh any found out of
   * step twice, a moment apart (documents being sent, written, parked or
   * refused are left out). Emits `drift` when it finds any. Runs on its own
   * every `verifyIntervalMs` while live; a call while one runs joins it.
   */
  verify(options: VerifyOptions = {}): Promise<VerifyReport> {
    this.assertOpen()
    this.verifying ??= (async () => {
      try {
        const report = await verifyAgainstMesh(this.rt, options)
        const m = this.metricsRecorder.verify
        m.runs++
        m.lastAt = Date.now()
        m.drifted += report.drifted.length
        if (report.drifted.length > 0) {
          this.rt.logger.warn('documents out of step with the mesh', {
            count: report.drifted.length,
            repaired: report.repaired,
            first: report.drifted.slice(0, 5).map((d) => `${d.model}/${d.id} ${d.kind}`),
          })
          this.events.emit('drift', { documents: report.drifted, repaired: report.repaired })
        }
        return report
      } finally {
        this.verifying = undefined
      }
    })()
    return this.verifying
  }

  async flush(): Promise<void> {
    this.assertOpen()
    await this.drain.drainAll()
    await this.queue.idle()
  }

  metrics(): SyncMetrics {
    return this.metricsRecorder.snapshot(this.queue.depth)
  }

  on<E extends keyof SyncEvents>(event: E, listener: SyncEventListener<E>): () => void {
    return this.events.on(event, listener)
  }

  private fail(phase: SyncPhase, error: unknown, model?: string): void {
    this.metricsRecorder.errors++
    this.rt.logger.warn(`sync ${phase} failed`, { model, error: messageOf(error) })
    this.events.emit('error', model === undefined ? { phase, error } : { phase, error, model })
  }

  private closedError(): ClosedError {
    return new ClosedError('The sync coordinator')
  }

  /** Work asked of a closed coordinator would run against a mesh and a repository the app may have closed. */
  private assertOpen(): void {
    if (this.closing) throw this.closedError()
  }

  private binding(model: string): AdapterBinding {
    const b = this.bindings.get(model)
    if (!b) {
      throw new ValidationError(ErrorCode.INVALID_OPTIONS, `No adapter is registered for model ${model}.`, {
        details: { model },
      })
    }
    return b
  }

  // ---- shutdown ------------------------------------------------------------------------

  close(): Promise<void> {
    this.closing ??= (async () => {
      const wasLive = this.current === 'live'
      this.stopController.abort()
      this.setState('closing')
      const timer = setTimeout(() => this.shutdownController.abort(), this.rt.settings.closeTimeoutMs)
      timer.unref()
      try {
        await this.stopWork()
        await settle(this.rt, this.drain, this.follower, wasLive)
      } finally {
        clearTimeout(timer)
        this.setState('closed')
      }
    })()
    return this.closing
  }

  /** Stops every source of new work: polling, change signals, the drain loop, a startup in progress. */
  private async stopWork(): Promise<void> {
    this.follower.stop()
    if (this.verifier) clearInterval(this.verifier)
    for (const u of this.unsubscribe.splice(0)) u()
    await this.drain.stop()
    await this.starting?.catch(() => undefined)
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}
