/**
 * The public types of the instance manager, apart from the functions that
 * use them, so the store sharing, the migration and the entry points can
 * all name them without importing one another.
 */
import type { Logger } from '../logger.js'
import type { CleanupReport } from './dirs.js'
import type { LockOptions } from './lock.js'
import type { MeshEngine, MigrationProgress } from './mesh-engine.js'
import type { OwnerRecord } from './owner.js'

/** What `migrateFrom` did, source by source. */
export interface MigrationReport {
  migrated: { source: string; documents: number; resumedFrom: number }[]
  /** Sources left alone; `detail` says why in words. */
  skipped: { source: string; reason: 'already-migrated' | 'in-use' | 'open-in-this-process'; detail: string }[]
  /** Sources whose migration failed; the others went on, and the next open retries these. */
  failed: { source: string; error: string }[]
}

/** A store the instance manager can own. */
export type ClosableStore = { close(): Promise<void> }

/** `shared`: one directory whose data persists. `unique`: a fresh directory per run. */
export type DirectoryStrategy = 'shared' | 'unique'

/**
 * Options of an instance of any engine's store; the package entry's
 * `OpenInstanceOptions` is this with the builtin mesh as the default store.
 */
export interface EngineInstanceOptions<S extends ClosableStore = ClosableStore> {
  /**
   * The persistence directory, created if missing and resolved to its
   * absolute real path (relative paths against the current directory). With
   * `strategy: 'unique'`, the parent and name prefix of the per-run
   * directories (`<dir>_<date>_<time>_<pid>_<random>`).
   */
  dir: string
  /** The store implementation. Default (through the package entry): the builtin engine. */
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
 * last `close()` closes the store and releases the lock. Generic over the
 * engine's store; the package entry's `MeshInstance` is this with the
 * builtin mesh as the default store.
 *
 * @example
 * ```ts
 * await using pos = await openMeshInstance({ dir: './pos-mesh', handleSignals: true })
 * await pos.store.upsert('counters', [{ _id: 'c1', curRcptNo: 8 }])
 * console.log(await pos.health())
 * ```
 */
export interface EngineInstance<S extends ClosableStore = ClosableStore> extends AsyncDisposable {
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
