import { AbortError, ClosedError, ErrorCode, ValidationError } from '../errors.js'
import type { Logger } from '../logger.js'
import type { MeshStore } from '../mesh/mesh-store.js'
import type { Repository } from '../repository/repository.js'
import { delay } from '../util/delay.js'
import type { SyncAdapter, SyncContext } from './adapter.js'
import { createSyncCoordinator, type SyncCoordinator } from './coordinator.js'
import type { SyncEventListener, SyncEvents } from './events.js'
import { resolveSettings, type SyncSettings } from './settings.js'
import type { StartupReport } from './startup.js'

/** A resource, a promise of it (it becomes ready later), or a function producing either. */
export type Eventually<T> = T | PromiseLike<T> | (() => T | PromiseLike<T>)

export interface SyncRegistryOptions {
  /** The mesh, or how to get it once it is ready. */
  mesh: Eventually<MeshStore>
  /** The repository, or how to get it once it is ready. */
  repository: Eventually<Repository>
  /** Adapters to register (the generated list, usually). More can be added before start. */
  adapters?: readonly SyncAdapter[]
  context?: SyncContext
  settings?: SyncSettings
  logger?: Logger
}

/**
 * Boots sync for a list of adapters: waits until the mesh and the repository
 * are ready (no fixed sleep; `startupDelayMs` exists, default 0), then starts
 * a coordinator — catch-up since the last run, captured local changes, seeding
 * of rows never mirrored, live — and forwards its events.
 *
 * @example
 * ```ts
 * const sync = createSyncRegistry({ mesh: openMesh({ dir }), repository: openSqliteRepository({ file, models }) })
 * sync.registerDefaults(syncAdapters) // the generated list
 * sync.on('progress', (p) => bar.update(p.done, p.total))
 * const report = await sync.start()
 * ```
 */
export interface SyncRegistry extends AsyncDisposable {
  /** Registers adapters. Registering the same adapters again does nothing. Before start() only. */
  registerDefaults(adapters: readonly SyncAdapter[]): void
  register(adapter: SyncAdapter): void
  /** Memoised: later calls return the same promise. Retryable after a failure. */
  start(options?: { signal?: AbortSignal }): Promise<StartupReport>
  /** The running coordinator. Throws before start() has resolved. */
  readonly coordinator: SyncCoordinator
  on<E extends keyof SyncEvents>(event: E, listener: SyncEventListener<E>): () => void
  /** Closes the coordinator (not the mesh nor the repository, which the caller owns). Idempotent. */
  close(): Promise<void>
}

export function createSyncRegistry(options: SyncRegistryOptions): SyncRegistry {
  if (typeof options !== 'object' || options === null || options.mesh === undefined || !options.repository) {
    throw new ValidationError(ErrorCode.INVALID_OPTIONS, 'createSyncRegistry needs a mesh and a repository.')
  }
  return new Registry(options)
}

async function resolveEventually<T>(value: Eventually<T>): Promise<T> {
  return typeof value === 'function' ? await (value as () => T | PromiseLike<T>)() : await value
}

class Registry implements SyncRegistry {
  private readonly adapters: SyncAdapter[] = []
  private readonly listeners: { event: keyof SyncEvents; listener: (p: unknown) => void; off?: () => void }[] = []
  private running: SyncCoordinator | undefined
  private starting: Promise<StartupReport> | undefined
  private closing: Promise<void> | undefined

  constructor(private readonly options: SyncRegistryOptions) {
    resolveSettings(options.settings)
    for (const a of options.adapters ?? []) this.register(a)
  }

  registerDefaults(adapters: readonly SyncAdapter[]): void {
    for (const a of adapters) this.register(a)
  }

  register(adapter: SyncAdapter): void {
    if (this.adapters.includes(adapter)) return
    if (this.starting) throw new ValidationError(ErrorCode.INVALID_OPTIONS, 'Register adapters before start().')
    const clash = this.adapters.find((a) => a.model === adapter?.model || a.collection === adapter?.collection)
    if (clash) {
      throw new ValidationError(
        ErrorCode.INVALID_ADAPTER,
        `Sync adapter ${String(adapter?.model)}: model or collection already registered by the adapter of ${clash.model}.`,
        { details: { model: adapter?.model } },
      )
    }
    this.adapters.push(adapter)
  }

  get coordinator(): SyncCoordinator {
    if (!this.running)
      throw new ValidationError(ErrorCode.INVALID_OPTIONS, 'Sync has not started: await start() first.')
    return this.running
  }

  start(options: { signal?: AbortSignal } = {}): Promise<StartupReport> {
    if (this.closing) return Promise.reject(new ClosedError('The sync registry'))
    this.starting ??= this.boot(options.signal).catch((error) => {
      this.starting = undefined
      throw error
    })
    return this.starting
  }

  private async boot(signal: AbortSignal | undefined): Promise<StartupReport> {
    const settings = resolveSettings(this.options.settings)
    if (settings.startupDelayMs > 0) await delay(settings.startupDelayMs, signal)
    const [mesh, repository] = await Promise.all([
      resolveEventually(this.options.mesh),
      resolveEventually(this.options.repository),
    ])
    if (signal?.aborted) throw new AbortError(signal.reason)
    if (this.closing) throw new ClosedError('The sync registry')
    const coordinator =
      this.running ??
      createSyncCoordinator({
        mesh,
        repository,
        adapters: this.adapters,
        ...(this.options.context ? { context: this.options.context } : {}),
        ...(this.options.settings ? { settings: this.options.settings } : {}),
        ...(this.options.logger ? { logger: this.options.logger } : {}),
      })
    if (!this.running) {
      for (const entry of this.listeners) entry.off = coordinator.on(entry.event, entry.listener)
      this.running = coordinator
    }
    return coordinator.start(signal ? { signal } : {})
  }

  on<E extends keyof SyncEvents>(event: E, listener: SyncEventListener<E>): () => void {
    const entry: (typeof this.listeners)[number] = { event, listener: listener as (p: unknown) => void }
    this.listeners.push(entry)
    if (this.running) entry.off = this.running.on(event, listener)
    return () => {
      entry.off?.()
      const i = this.listeners.indexOf(entry)
      if (i >= 0) this.listeners.splice(i, 1)
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      // Closing the coordinator first stops a startup in progress at its next step.
      await this.running?.close()
      await this.starting?.catch(() => undefined)
      await this.running?.close()
    })()
    return this.closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }
}
