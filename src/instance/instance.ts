import { existsSync, mkdirSync, realpathSync, statSync } from 'node:fs'
import { basename, dirname, join, resolve } from 'node:path'
import type { BuiltinMesh } from '../engine/types.js'
import { ErrorCode, hasCode, type LockHeldError, StorageError, ValidationError } from '../errors.js'
import { type Logger, silentLogger } from '../logger.js'
import type { CleanupReport } from './dirs.js'
import { builtinEngine, type MeshEngine, type MigrationProgress } from './engine.js'
import { directoryUnusable } from './fs-errors.js'
import type { LockOptions } from './lock.js'
import { type MigrationReport, resolveSources } from './migrate-sources.js'
import type { OwnerRecord } from './owner.js'
import { closeAllInstances, instanceKey, joinInstance, registerInstance } from './registry.js'
import { type Placement, SharedInstance } from './shared-instance.js'
import { installSignalHandlers } from './shutdown.js'
import { uniqueDirName } from './unique-dir.js'

export type { MigrationReport } from './migrate-sources.js'
export { closeAllInstances } from './registry.js'

/** A store the instance manager can own. */
export type ClosableStore = { close(): Promise<void> }

/** `shared`: one directory whose data persists. `unique`: a fresh directory per run. */
export type DirectoryStrategy = 'shared' | 'unique'

export interface OpenInstanceOptions<S extends ClosableStore = BuiltinMesh> {
  /**
   * The persistence directory, created if missing and resolved to its
   * absolute real path (relative paths against the current directory). With
   * `strategy: 'unique'`, the parent and name prefix of the per-run
   * directories (`<dir>_<date>_<time>_<pid>_<random>`).
   */
  dir: string
  /** The store implementation. Default: the builtin engine. */
  engine?: MeshEngine<S>
  /** Default `shared`. */
  strategy?: DirectoryStrategy
  /**
   * When another process holds the directory: `wait` (default) up to
   * `lockTimeoutMs`, then fail with `LOCK_HELD`; `fail` at once; `unique`
   * falls back to a fresh per-run directory, with a warning (the shared
   * directory's documents are not visible there until migrated).
   */
  onLocked?: 'wait' | 'fail' | 'unique'
  /** How long `onLocked: 'wait'` waits. Default 10,000 ms. */
  lockTimeoutMs?: number
  lock?: LockOptions
  /**
   * Old directories whose documents are merged in, once each: explicit paths,
   * or `'unique-siblings'` for the per-run directories beside `dir` (ours, and
   * the lock-fix seed's `<dir>_<timestamp>_<n>`).
   */
  migrateFrom?: readonly string[] | 'unique-siblings'
  onMigrationProgress?: (p: MigrationProgress) => void
  /**
   * Removes per-run directories beside `dir` unused for `olderThanMs`
   * (default 24 h) after opening (and after migrating), never a locked one,
   * the current one or one whose migration failed. `true` for the defaults.
   */
  cleanup?: boolean | { olderThanMs?: number; dryRun?: boolean }
  /** Period of the health monitor (0: off). Default 30,000 ms. */
  healthIntervalMs?: number
  /** Close every instance of the process on SIGINT, SIGTERM and `beforeExit`. Default false. */
  handleSignals?: boolean
  /** Cancels a wait for the lock (code `ABORTED`). */
  signal?: AbortSignal
  logger?: Logger
}

/** A snapshot of an instance's state. */
export interface InstanceHealth {
  dir: string
  engine: string
  strategy: DirectoryStrategy
  /** Why a unique directory was used instead of the shared one, if it was. */
  fallback?: string
  lock: {
    /** Checked against the files each time, not remembered. */
    held: boolean
    mode: 'kernel' | 'heartbeat'
    /** Our owner record. */
    owner: OwnerRecord
    /** Why the lock was lost, once it was. */
    lostReason?: string
    /** Who the directory's owner record names now, when the lock was lost. */
    currentHolder?: OwnerRecord
  }
  storeOpen: boolean
  sizeBytes: number
  /** Handles open on this instance in this process. */
  handles: number
  /** The latest problem: a lost lock, a failed migration or cleanup, a repaired owner record… */
  lastError?: string
  checkedAt: string
}

export interface InstanceEvents {
  /** Each run of the monitor. */
  health: InstanceHealth
  /** The lock is no longer ours (its file was removed or replaced, or another holder took over). Emitted once. */
  'lock-lost': { dir: string; reason: string }
  /** A problem was recorded as `lastError`. */
  error: { dir: string; message: string }
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
  /** What `migrateFrom` did when the instance was opened. */
  readonly migration: MigrationReport | undefined
  /** What `cleanup` did when the instance was opened. */
  readonly cleanup: CleanupReport | undefined
  health(): Promise<InstanceHealth>
  on<E extends keyof InstanceEvents>(event: E, listener: (payload: InstanceEvents[E]) => void): () => void
  /** Releases this handle. Idempotent. The last handle closes the store, then releases the lock. */
  close(): Promise<void>
}

/**
 * Opens (or joins) the instance for a directory. Later opens of an instance
 * already open in this process join it and their other options are ignored.
 */
export async function openMeshInstance<S extends ClosableStore = BuiltinMesh>(
  options: OpenInstanceOptions<S>,
): Promise<MeshInstance<S>> {
  const opts = checkOptions(options)
  const engine = (opts.engine ?? builtinEngine()) as MeshEngine<S>
  const logger = opts.logger ?? silentLogger
  // Checked before anything is created or locked.
  const sources = opts.migrateFrom === undefined ? undefined : resolveSources(opts.migrateFrom, opts.dir, engine)
  if (opts.handleSignals) installSignalHandlers(closeAllInstances)
  if ((opts.strategy ?? 'shared') === 'unique') return openUnique(engine, opts, sources, undefined)

  const dir = realDir(opts.dir)
  const key = instanceKey(engine.name, dir)
  const place: Placement = { dir, key, strategy: 'shared', named: dir }
  try {
    return await joinInstance(
      key,
      dir,
      () => SharedInstance.open(engine, place, opts, sources),
      (shared) => shared.handle(),
    )
  } catch (error) {
    if (opts.onLocked !== 'unique' || !hasCode(error, ErrorCode.LOCK_HELD)) throw error
    const holder = (error as LockHeldError).holder
    const reason = `${dir} is held by process ${holder?.pid ?? '?'} on ${holder?.hostname ?? '?'}`
    logger.warn(
      `mesh directory in use; falling back to a fresh per-run directory. Documents stored in ${dir} are NOT visible in it until merged back (migrateFrom).`,
      { dir, holder },
    )
    return openUnique(engine, opts, sources, reason)
  }
}

async function openUnique<S extends ClosableStore>(
  engine: MeshEngine<S>,
  opts: OpenInstanceOptions<S>,
  sources: readonly string[] | undefined,
  fallback: string | undefined,
): Promise<MeshInstance<S>> {
  const base = resolve(opts.dir)
  const parent = realDir(dirname(base))
  const dir = join(parent, uniqueDirName(basename(base)))
  try {
    mkdirSync(dir)
  } catch (error) {
    throw directoryUnusable(dir, 'create', error)
  }
  ;(opts.logger ?? silentLogger).warn(
    'opening a fresh per-run mesh directory: documents of earlier runs are not visible in it (merge them with migrateFrom)',
    { dir, ...(fallback ? { because: fallback } : {}) },
  )
  const key = instanceKey(engine.name, dir)
  const place: Placement = { dir, key, strategy: 'unique', named: join(parent, basename(base)) }
  if (fallback) place.fallback = fallback
  const pending = SharedInstance.open(engine, place, { ...opts, onLocked: 'fail' }, sources)
  registerInstance(key, dir, pending)
  return (await pending).handle()
}

/** Resolves (creating if needed) a directory to its absolute real path. */
export function realDir(dir: string): string {
  const abs = resolve(dir)
  try {
    if (existsSync(abs) && !statSync(abs).isDirectory()) {
      throw new StorageError(ErrorCode.DIRECTORY_UNUSABLE, `${abs} is a file, not a directory.`, {
        details: { dir: abs },
      })
    }
    mkdirSync(abs, { recursive: true })
    return realpathSync(abs)
  } catch (error) {
    throw directoryUnusable(abs, 'use', error)
  }
}

function checkOptions<S extends ClosableStore>(options: OpenInstanceOptions<S>): OpenInstanceOptions<S> {
  const bad = (what: string) => new ValidationError(ErrorCode.INVALID_OPTIONS, `openMeshInstance: ${what}.`)
  if (typeof options !== 'object' || options === null) throw bad('options must be an object with a dir')
  const o = options
  if (typeof o.dir !== 'string' || o.dir.length === 0) throw bad('dir must be a non-empty path')
  if (o.strategy !== undefined && o.strategy !== 'shared' && o.strategy !== 'unique') {
    throw bad("strategy must be 'shared' or 'unique'")
  }
  if (o.onLocked !== undefined && !['wait', 'fail', 'unique'].includes(o.onLocked)) {
    throw bad("onLocked must be 'wait', 'fail' or 'unique'")
  }
  if (o.lockTimeoutMs !== undefined && !(o.lockTimeoutMs >= 0)) throw bad('lockTimeoutMs must be a number >= 0')
  if (o.healthIntervalMs !== undefined && !(o.healthIntervalMs >= 0)) {
    throw bad('healthIntervalMs must be a number >= 0')
  }
  if (o.engine !== undefined) {
    const e = o.engine
    if (typeof e?.name !== 'string' || typeof e.open !== 'function' || typeof e.isMeshDir !== 'function') {
      throw bad('engine must have a name, open(dir) and isMeshDir(dir)')
    }
  }
  const lock = o.lock
  if (lock !== undefined) {
    if (lock.mode !== undefined && !['kernel', 'heartbeat', 'auto'].includes(lock.mode)) {
      throw bad("lock.mode must be 'kernel', 'heartbeat' or 'auto'")
    }
    const beat = lock.heartbeatMs ?? 2_000
    if (!(beat > 0)) throw bad('lock.heartbeatMs must be a number > 0')
    if (!((lock.staleMs ?? 15_000) >= 2 * beat)) throw bad('lock.staleMs must be at least twice lock.heartbeatMs')
  }
  const m = o.migrateFrom
  if (m !== undefined && m !== 'unique-siblings' && !(Array.isArray(m) && m.every((s) => typeof s === 'string'))) {
    throw bad("migrateFrom must be an array of paths or 'unique-siblings'")
  }
  const c = o.cleanup
  if (c !== undefined && typeof c !== 'boolean') {
    if (typeof c !== 'object' || c === null) throw bad('cleanup must be a boolean or { olderThanMs, dryRun }')
    if (c.olderThanMs !== undefined && !(c.olderThanMs >= 0)) throw bad('cleanup.olderThanMs must be a number >= 0')
  }
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) throw bad('signal must be an AbortSignal')
  return options
}
