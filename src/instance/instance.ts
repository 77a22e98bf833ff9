import { mkdirSync, readdirSync, realpathSync, statSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import type { BuiltinMesh } from '../engine/types.js'
import { ErrorCode, hasCode, type LockHeldError, StorageError, ValidationError } from '../errors.js'
import { type Logger, silentLogger } from '../logger.js'
import { dirSize } from './dir-size.js'
import { builtinEngine, type MeshEngine, type MigrationProgress } from './engine.js'
import { DirectoryLock, type LockMode, type LockOptions } from './lock.js'
import { isMigrated, markMigrated } from './migration.js'
import type { OwnerRecord } from './owner.js'
import { installSignalHandlers } from './shutdown.js'

/** A store the instance manager can own. */
export type ClosableStore = { close(): Promise<void> }

export type DirectoryStrategy = 'shared' | 'unique'

export interface OpenInstanceOptions<S extends ClosableStore = BuiltinMesh> {
  /**
   * The persistence directory. With `strategy: 'unique'`, the parent and
   * name prefix of the per-run directories (`<dir>_<timestamp>_<pid>_<random>`).
   * Relative paths resolve against the current directory.
   */
  dir: string
  /** The store implementation. Default: the builtin engine. */
  engine?: MeshEngine<S>
  /** `shared` (default): one directory whose data persists. `unique`: a fresh directory per run. */
  strategy?: DirectoryStrategy
  /**
   * When another process holds the directory: `wait` (default) up to
   * `lockTimeoutMs`, then fail; `fail` at once; `unique` falls back to a fresh
   * directory (loudly: its data is not visible there).
   */
  onLocked?: 'wait' | 'fail' | 'unique'
  /** Default 10,000 ms. */
  lockTimeoutMs?: number
  lock?: LockOptions
  /**
   * Old directories whose documents are merged in once: explicit paths, or
   * `'unique-siblings'` for every `<dir>_*` directory left by the unique strategy.
   */
  migrateFrom?: readonly string[] | 'unique-siblings'
  onMigrationProgress?: (p: MigrationProgress) => void
  /** Period of the health monitor (0: off). Default 30,000 ms. */
  healthIntervalMs?: number
  /** Close every instance on SIGINT, SIGTERM and beforeExit. Default false. */
  handleSignals?: boolean
  signal?: AbortSignal
  logger?: Logger
}

/** What `migrateFrom` did. */
export interface MigrationReport {
  migrated: { source: string; documents: number; resumedFrom: number }[]
  skipped: { source: string; reason: string }[]
}

export interface InstanceHealth {
  dir: string
  engine: string
  strategy: DirectoryStrategy
  /** Why a unique directory was used instead of the shared one, if it was. */
  fallback?: string
  lock: { held: boolean; mode: 'kernel' | 'heartbeat'; owner: OwnerRecord }
  storeOpen: boolean
  sizeBytes: number
  /** Handles open on this instance in this process. */
  handles: number
  lastError?: string
  checkedAt: string
}

export interface InstanceEvents {
  health: InstanceHealth
  /** The lock is no longer ours (its files were removed or replaced). */
  'lock-lost': { dir: string }
  closed: { dir: string }
}

/**
 * A store opened for real use: it owns its directory's lock and reports its
 * health. Opening the same directory again in the same process (hot reload,
 * double initialisation) returns another handle on the same instance; the
 * last `close()` closes the store and releases the lock.
 *
 * @example
 * ```ts
 * await using pos = await openMeshInstance({ dir: './pos-mesh', handleSignals: true })
 * await pos.store.upsert('counters', [{ _id: 'c1', curRcptNo: 8 }])
 * console.log(await pos.health())
 * ```
 */
export interface MeshInstance<S extends ClosableStore = BuiltinMesh> extends AsyncDisposable {
  /** Absolute real path of the directory in use. */
  readonly dir: string
  readonly store: S
  readonly strategy: DirectoryStrategy
  readonly fallback: string | undefined
  readonly migration: MigrationReport | undefined
  health(): Promise<InstanceHealth>
  on<E extends keyof InstanceEvents>(event: E, listener: (payload: InstanceEvents[E]) => void): () => void
  /** Releases this handle. Idempotent. The last handle closes the store, then releases the lock. */
  close(): Promise<void>
}

const REGISTRY_KEY = Symbol.for('meshmirror.instances')

type Registry = Map<string, Promise<SharedInstance<ClosableStore>>>

/** Instances of this process, on `globalThis` so that a re-imported module finds them. */
function registry(): Registry {
  const g = globalThis as { [REGISTRY_KEY]?: Registry }
  g[REGISTRY_KEY] ??= new Map()
  return g[REGISTRY_KEY]
}

/** Directories this process holds, for probes that must not lock against ourselves. */
export function heldByThisProcess(dir: string): boolean {
  for (const key of registry().keys()) if (key.endsWith(`\u0000${dir}`)) return true
  return false
}

/** Closes every instance of this process (used on shutdown). */
export async function closeAllInstances(): Promise<void> {
  const all = [...registry().values()]
  await Promise.allSettled(all.map(async (p) => (await p).destroy()))
}

/** Opens (or joins) the instance for a directory. */
export async function openMeshInstance<S extends ClosableStore = BuiltinMesh>(
  options: OpenInstanceOptions<S>,
): Promise<MeshInstance<S>> {
  const opts = checkOptions(options)
  const engine = (opts.engine ?? builtinEngine()) as MeshEngine<S>
  const logger = opts.logger ?? silentLogger
  if (opts.handleSignals) installSignalHandlers(closeAllInstances)
  const strategy = opts.strategy ?? 'shared'
  if (strategy === 'unique') return (await openUnique(engine, opts, undefined)).handle()

  const dir = realDir(opts.dir)
  const key = `${engine.name}\u0000${dir}`
  const reg = registry()
  let pending = reg.get(key) as Promise<SharedInstance<S>> | undefined
  if (!pending) {
    pending = SharedInstance.open(engine, dir, 'shared', undefined, opts, key)
    reg.set(key, pending as Promise<SharedInstance<ClosableStore>>)
    pending.catch(() => reg.delete(key))
  }
  try {
    const shared = await pending
    return shared.handle()
  } catch (error) {
    if (opts.onLocked === 'unique' && hasCode(error, ErrorCode.LOCK_HELD)) {
      const holder = (error as LockHeldError).holder
      const reason = `${dir} is held by process ${holder?.pid ?? '?'} on ${holder?.hostname ?? '?'}`
      logger.warn(
        `mesh directory in use; falling back to a fresh unique directory. Documents stored in ${dir} are NOT visible in it until merged back (migrateFrom).`,
        { dir, holder },
      )
      return (await openUnique(engine, opts, reason)).handle()
    }
    throw error
  }
}

async function openUnique<S extends ClosableStore>(
  engine: MeshEngine<S>,
  opts: OpenInstanceOptions<S>,
  fallback: string | undefined,
): Promise<SharedInstance<S>> {
  const base = resolve(opts.dir)
  const parent = realDir(dirname(base))
  const stamp = new Date().toISOString().replace(/[-:.]/g, '').replace('T', '_').slice(0, 15)
  const dir = join(parent, `${basename(base)}_${stamp}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`)
  mkdirSync(dir)
  ;(opts.logger ?? silentLogger).info('opening a unique mesh directory for this run', { dir })
  const key = `${engine.name}\u0000${dir}`
  const pending = SharedInstance.open(engine, dir, 'unique', fallback, opts, key)
  registry().set(key, pending as Promise<SharedInstance<ClosableStore>>)
  pending.catch(() => registry().delete(key))
  return pending
}

/** Resolves (creating if needed) a directory to its absolute real path. */
export function realDir(dir: string): string {
  const abs = resolve(dir)
  try {
    mkdirSync(abs, { recursive: true })
  } catch (cause) {
    throw new StorageError(ErrorCode.DIRECTORY_UNUSABLE, `Cannot create ${abs}: ${(cause as Error).message}`, {
      cause,
      details: { dir: abs },
    })
  }
  if (!statSync(abs).isDirectory()) {
    throw new StorageError(ErrorCode.DIRECTORY_UNUSABLE, `${abs} exists and is not a directory.`, {
      details: { dir: abs },
    })
  }
  return realpathSync(abs)
}

class SharedInstance<S extends ClosableStore> {
  private refs = 0
  private closing: Promise<void> | undefined
  private monitor: NodeJS.Timeout | undefined
  private lastError: string | undefined
  private readonly listeners = new Map<keyof InstanceEvents, Set<(p: never) => void>>()

  private constructor(
    readonly engine: MeshEngine<S>,
    readonly dir: string,
    readonly strategy: DirectoryStrategy,
    readonly fallback: string | undefined,
    readonly lock: DirectoryLock,
    readonly store: S,
    readonly migration: MigrationReport | undefined,
    private readonly key: string,
  ) {}

  static async open<S extends ClosableStore>(
    engine: MeshEngine<S>,
    dir: string,
    strategy: DirectoryStrategy,
    fallback: string | undefined,
    opts: OpenInstanceOptions<S>,
    key: string,
  ): Promise<SharedInstance<S>> {
    const logger = opts.logger ?? silentLogger
    const onLocked = opts.onLocked ?? 'wait'
    const lock = await DirectoryLock.acquire(dir, {
      ...opts.lock,
      timeoutMs: onLocked === 'wait' ? (opts.lockTimeoutMs ?? 10_000) : 0,
      ...(opts.signal ? { signal: opts.signal } : {}),
      onWait: (holder, waited) =>
        logger.debug('mesh directory held; waiting', { dir, holder: holder?.pid, waitedMs: Math.round(waited) }),
    })
    let store: S | undefined
    try {
      store = await engine.open(dir, { logger })
      const migration = opts.migrateFrom ? await migrate(engine, store, dir, opts) : undefined
      const instance = new SharedInstance(engine, dir, strategy, fallback, lock, store, migration, key)
      instance.startMonitor(opts.healthIntervalMs ?? 30_000)
      return instance
    } catch (error) {
      await store?.close()
      lock.release()
      throw error
    }
  }

  handle(): MeshInstance<S> {
    this.refs++
    let closed = false
    const self = this
    return {
      dir: this.dir,
      store: this.store,
      strategy: this.strategy,
      fallback: this.fallback,
      migration: this.migration,
      health: () => this.health(),
      on: (event, listener) => this.on(event, listener),
      async close() {
        if (closed) return
        closed = true
        await self.release()
      },
      async [Symbol.asyncDispose]() {
        await this.close()
      },
    }
  }

  private async release(): Promise<void> {
    this.refs--
    if (this.refs === 0) await this.destroy()
  }

  /** Closes the store, then releases the lock (last). Idempotent. */
  destroy(): Promise<void> {
    this.closing ??= (async () => {
      if (this.monitor) clearInterval(this.monitor)
      registry().delete(this.key)
      try {
        await this.store.close()
      } finally {
        this.lock.release()
        this.emit('closed', { dir: this.dir })
      }
    })()
    return this.closing
  }

  async health(): Promise<InstanceHealth> {
    const held = this.lock.verify()
    if (!held && !this.closing) this.lastError = 'the directory lock is no longer held by this process'
    const h: InstanceHealth = {
      dir: this.dir,
      engine: this.engine.name,
      strategy: this.strategy,
      lock: { held, mode: this.lock.mode, owner: this.lock.owner },
      storeOpen: this.closing === undefined,
      sizeBytes: dirSize(this.dir),
      handles: this.refs,
      checkedAt: new Date().toISOString(),
    }
    if (this.fallback) h.fallback = this.fallback
    if (this.lastError) h.lastError = this.lastError
    return h
  }

  on<E extends keyof InstanceEvents>(event: E, listener: (payload: InstanceEvents[E]) => void): () => void {
    let set = this.listeners.get(event)
    if (!set) {
      set = new Set()
      this.listeners.set(event, set)
    }
    set.add(listener as (p: never) => void)
    return () => set.delete(listener as (p: never) => void)
  }

  private emit<E extends keyof InstanceEvents>(event: E, payload: InstanceEvents[E]): void {
    for (const l of this.listeners.get(event) ?? []) (l as (p: InstanceEvents[E]) => void)(payload)
  }

  private startMonitor(intervalMs: number): void {
    if (intervalMs <= 0) return
    this.monitor = setInterval(() => {
      void this.health().then((h) => {
        this.emit('health', h)
        if (!h.lock.held && !this.closing) this.emit('lock-lost', { dir: this.dir })
      })
    }, intervalMs)
    this.monitor.unref()
  }
}

async function migrate<S extends ClosableStore>(
  engine: MeshEngine<S>,
  target: S,
  targetDir: string,
  opts: OpenInstanceOptions<S>,
): Promise<MigrationReport> {
  const report: MigrationReport = { migrated: [], skipped: [] }
  if (!engine.migrate) throw new ValidationError(ErrorCode.INVALID_OPTIONS, `The ${engine.name} engine cannot migrate.`)
  const sources =
    opts.migrateFrom === 'unique-siblings'
      ? uniqueSiblings(opts.dir, targetDir, engine)
      : (opts.migrateFrom ?? []).map((d) => {
          const abs = resolve(d)
          if (!engine.isMeshDir(abs)) {
            throw new StorageError(
              ErrorCode.STORE_INCOMPATIBLE,
              `Cannot migrate from ${abs}: it holds no ${engine.name} mesh store.`,
              {
                details: { dir: abs },
              },
            )
          }
          return realpathSync(abs)
        })
  for (const source of sources) {
    if (source === targetDir) continue
    if (isMigrated(source)) {
      report.skipped.push({ source, reason: 'already migrated' })
      continue
    }
    const lock = DirectoryLock.tryAcquire(source, opts.lock)
    if (!lock) {
      report.skipped.push({ source, reason: 'in use by another process' })
      continue
    }
    try {
      const r = await engine.migrate(source, target, {
        chunkSize: 1000,
        ...(opts.onMigrationProgress ? { onProgress: opts.onMigrationProgress } : {}),
      })
      markMigrated(source, { into: targetDir, at: new Date().toISOString(), documents: r.documents })
      report.migrated.push({ source, ...r })
    } finally {
      lock.release()
    }
  }
  return report
}

/** Directories `<name>_*` beside `dir` that hold a store of this engine. */
function uniqueSiblings(dir: string, targetDir: string, engine: MeshEngine<ClosableStore>): string[] {
  const base = resolve(dir)
  const parent = dirname(base)
  const prefix = `${basename(base)}_`
  return readdirSync(parent, { withFileTypes: true })
    .filter((e) => e.isDirectory() && e.name.startsWith(prefix))
    .map((e) => realpathSync(join(parent, e.name)))
    .filter((d) => d !== targetDir && engine.isMeshDir(d))
    .sort()
}

function checkOptions<S extends ClosableStore>(options: OpenInstanceOptions<S>): OpenInstanceOptions<S> {
  const bad = (what: string) => new ValidationError(ErrorCode.INVALID_OPTIONS, `openMeshInstance: ${what}.`)
  if (typeof options !== 'object' || options === null) throw bad('options must be an object with a dir')
  if (typeof options.dir !== 'string' || options.dir.length === 0) throw bad('dir must be a non-empty path')
  if (options.strategy !== undefined && options.strategy !== 'shared' && options.strategy !== 'unique') {
    throw bad("strategy must be 'shared' or 'unique'")
  }
  if (options.onLocked !== undefined && !['wait', 'fail', 'unique'].includes(options.onLocked)) {
    throw bad("onLocked must be 'wait', 'fail' or 'unique'")
  }
  if (options.lockTimeoutMs !== undefined && !(options.lockTimeoutMs >= 0)) throw bad('lockTimeoutMs must be >= 0')
  const mode: LockMode | undefined = options.lock?.mode
  if (mode !== undefined && !['kernel', 'heartbeat', 'auto'].includes(mode)) {
    throw bad("lock.mode must be 'kernel', 'heartbeat' or 'auto'")
  }
  return options
}
