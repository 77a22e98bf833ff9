import { basename, dirname } from 'node:path'
import { type Logger, silentLogger } from '../logger.js'
import { Emitter } from '../util/emitter.js'
import { dirSize } from './dir-size.js'
import { type CleanupReport, cleanupEngineDirs } from './dirs.js'
import { DirectoryLock } from './lock.js'
import type { MeshEngine } from './mesh-engine.js'
import { migrateSources } from './migrate-sources.js'
import { markClosing, type TrackedInstance } from './open-instances.js'
import { readOwner } from './owner.js'
import type {
  ClosableStore,
  DirectoryStrategy,
  EngineInstance,
  EngineInstanceOptions,
  InstanceEvents,
  InstanceHealth,
  MigrationReport,
} from './types.js'
import { uniqueNamePattern } from './unique-dir.js'

/** Where an instance's directory comes from. */
export interface Placement {
  dir: string
  key: string
  strategy: DirectoryStrategy
  /** Why a unique directory was used instead of the shared one. */
  fallback?: string
  /** The directory the options named (the shared one, or the prefix of unique ones). */
  named: string
}

/**
 * One open store with its lock, shared by every handle of this process.
 * The last handle's `close()` closes the store, then releases the lock.
 */
export class SharedInstance<S extends ClosableStore> implements TrackedInstance {
  migration: MigrationReport | undefined
  cleanup: CleanupReport | undefined
  private refs = 0
  private closed: Promise<void> | undefined
  private monitor: NodeJS.Timeout | undefined
  private lastError: string | undefined
  private lostReported = false
  private readonly events: Emitter<InstanceEvents>

  private constructor(
    readonly engine: MeshEngine<S>,
    readonly place: Placement,
    readonly lock: DirectoryLock,
    readonly store: S,
    private readonly logger: Logger,
  ) {
    // The lock's own heartbeat notices a loss between monitor runs (or with the monitor off).
    lock.onLost = () => {
      this.health().catch((error: unknown) => this.noteError(`health check failed: ${(error as Error).message}`))
    }
    this.events = new Emitter(logger, (error, event) => {
      const message = `a listener of '${String(event)}' threw: ${(error as Error)?.message ?? String(error)}`
      // A throwing 'error' listener is recorded, not re-emitted to itself.
      if (event === 'error') this.lastError = message
      else this.noteError(message)
    })
  }

  get dir(): string {
    return this.place.dir
  }

  get closing(): boolean {
    return this.closed !== undefined
  }

  /** Locks the directory, opens the store, then migrates and cleans up as asked. */
  static async open<S extends ClosableStore>(
    engine: MeshEngine<S>,
    place: Placement,
    opts: EngineInstanceOptions<S>,
    sources: readonly string[] | undefined,
  ): Promise<SharedInstance<S>> {
    const logger = opts.logger ?? silentLogger
    const onLocked = opts.onLocked ?? 'wait'
    const lock = await DirectoryLock.acquire(place.dir, {
      ...opts.lock,
      timeoutMs: onLocked === 'wait' ? (opts.lockTimeoutMs ?? 10_000) : 0,
      ...(opts.signal ? { signal: opts.signal } : {}),
      onWait: (holder, waited) =>
        logger.debug('mesh directory held; waiting', {
          dir: place.dir,
          holder: holder?.pid,
          waitedMs: Math.round(waited),
        }),
    })
    let store: S | undefined
    try {
      store = await engine.open(place.dir, { logger })
      const instance = new SharedInstance(engine, place, lock, store, logger)
      if (sources && sources.length > 0) {
        instance.migration = await migrateSources(engine, store, place.dir, sources, {
          ...(opts.lock ? { lock: opts.lock } : {}),
          ...(opts.onMigrationProgress ? { onProgress: opts.onMigrationProgress } : {}),
          logger,
        })
        if (instance.migration.failed.length > 0) {
          instance.noteError(`migration failed for ${instance.migration.failed.map((f) => f.source).join(', ')}`)
        }
      } else if (sources) {
        instance.migration = { migrated: [], skipped: [], failed: [] }
      }
      if (opts.cleanup) instance.runCleanup(opts)
      instance.startMonitor(opts.healthIntervalMs ?? 30_000)
      logger.info('mesh instance opened', { dir: place.dir, strategy: place.strategy, lockMode: lock.mode })
      return instance
    } catch (error) {
      try {
        await store?.close()
      } catch (closeError) {
        logger.error('closing the store after a failed open failed too', { error: String(closeError) })
      }
      lock.release()
      throw error
    }
  }

  handle(): EngineInstance<S> {
    this.refs++
    let released = false
    const self = this
    return {
      dir: this.dir,
      store: this.store,
      strategy: this.place.strategy,
      fallback: this.place.fallback,
      migration: this.migration,
      cleanup: this.cleanup,
      health: () => this.health(),
      on: (event, listener) => this.events.on(event, listener),
      async close() {
        if (released) return
        released = true
        self.refs--
        if (self.refs === 0) await self.destroy()
      },
      async [Symbol.asyncDispose]() {
        await this.close()
      },
    }
  }

  /** Stops the monitor, closes the store, then releases the lock (last). Idempotent. */
  destroy(): Promise<void> {
    if (!this.closed) {
      this.closed = (async () => {
        if (this.monitor) clearInterval(this.monitor)
        try {
          await this.store.close()
        } finally {
          this.lock.release()
          this.logger.info('mesh instance closed', { dir: this.dir })
          this.events.emit('closed', { dir: this.dir })
        }
      })()
      markClosing(this.place.key, this.dir, this.closed)
    }
    return this.closed
  }

  async health(): Promise<InstanceHealth> {
    const held = this.closing ? this.lock.held : this.lock.check()
    const repaired = this.lock.takeRepair()
    if (repaired) this.noteError(repaired)
    if (!held && !this.closing && !this.lostReported) {
      this.lostReported = true
      this.noteError(`the directory lock is no longer held by this process: ${this.lock.lost}`)
      this.logger.error('mesh directory lock lost', { dir: this.dir, reason: this.lock.lost })
      this.events.emit('lock-lost', { dir: this.dir, reason: this.lock.lost ?? 'unknown' })
    }
    const h: InstanceHealth = {
      dir: this.dir,
      engine: this.engine.name,
      strategy: this.place.strategy,
      lock: { held, mode: this.lock.mode, owner: this.lock.owner },
      storeOpen: !this.closing,
      sizeBytes: dirSize(this.dir),
      handles: this.refs,
      checkedAt: new Date().toISOString(),
    }
    if (!held && this.lock.lost) {
      h.lock.lostReason = this.lock.lost
      const current = readOwner(this.dir)
      if (current) h.lock.currentHolder = current
    }
    if (this.place.fallback) h.fallback = this.place.fallback
    if (this.lastError) h.lastError = this.lastError
    return h
  }

  private noteError(message: string): void {
    this.lastError = message
    this.events.emit('error', { dir: this.dir, message })
  }

  private runCleanup(opts: EngineInstanceOptions<S>): void {
    const c = opts.cleanup === true ? {} : opts.cleanup || {}
    const failedSources = this.migration?.failed.map((f) => f.source) ?? []
    try {
      // Only the per-run siblings of this directory: the parent may hold other applications' directories.
      this.cleanup = cleanupEngineDirs(dirname(this.place.named), {
        ...c,
        names: uniqueNamePattern(basename(this.place.named)),
        keep: [this.dir, ...failedSources],
        ...(opts.lock ? { lock: opts.lock } : {}),
        engine: this.engine,
      })
      if (this.cleanup.removed.length > 0) {
        this.logger.info('removed old mesh directories', {
          dirs: this.cleanup.removed.map((d) => d.dir),
          freedBytes: this.cleanup.freedBytes,
          dryRun: this.cleanup.dryRun,
        })
      }
      if (this.cleanup.failed.length > 0) this.noteError(`cleanup failed for ${this.cleanup.failed[0]!.dir}`)
    } catch (error) {
      this.noteError(`cleanup failed: ${(error as Error).message}`)
      this.logger.error('cleanup of old mesh directories failed', { error: (error as Error).message })
    }
  }

  private startMonitor(intervalMs: number): void {
    if (intervalMs <= 0) return
    this.monitor = setInterval(() => {
      this.health().then(
        (h) => this.events.emit('health', h),
        (error: unknown) => this.noteError(`health check failed: ${(error as Error).message}`),
      )
    }, intervalMs)
    this.monitor.unref()
  }
}
