import type { LockHolder } from '../errors.js'
import type { Logger } from '../logger.js'

/** Progress of a migration from one source directory. */
export interface MigrationProgress {
  source: string
  documents: number
}

/** An engine's account of the store in one directory, for `diagnose`. */
export interface StoreDescription {
  /** True when the directory holds no store yet (locked, never written). */
  empty?: boolean
  /** The store's on-disk format version, when readable. */
  version?: string
  /** The store's site id, when readable. */
  siteId?: string
  /** Why this meshmirror cannot read the store (damaged, or another format); absent when it can. */
  problem?: string
  /** A process outside meshmirror's lock that holds the store (e.g. a plain Ditto process). */
  heldBy?: LockHolder
}

/**
 * What the instance manager needs from a store implementation: how to open
 * it in a directory it has locked, how to recognise its directories, and
 * (optionally) how to merge an old directory into an open store. The manager
 * does the locking, sharing, cleanup and health; the engine only opens.
 *
 * @example
 * ```ts
 * const engine: MeshEngine<MyStore> = {
 *   name: 'my-store',
 *   open: (dir) => MyStore.open(dir),
 *   isMeshDir: (dir) => existsSync(join(dir, 'my-store.db')),
 * }
 * await using inst = await openMeshInstance({ dir: './data/pos', engine })
 * ```
 */
export interface MeshEngine<S extends { close(): Promise<void> }> {
  /** Names the engine in health reports; instances are shared per engine name and directory. */
  readonly name: string
  /** Opens the store in `dir`, which exists, is an absolute real path, and is locked by this process. */
  open(dir: string, context: { logger: Logger }): Promise<S>
  /** True when `dir` holds this engine's data. */
  isMeshDir(dir: string): boolean
  /**
   * What `diagnose` (and `meshmirror doctor`) reports of the store in `dir`,
   * read without changing it. Engines without it are described by their
   * lock and owner only.
   */
  describeStore?(dir: string): StoreDescription
  /**
   * Merges the documents of `sourceDir` (locked by the caller) into `target`.
   * Must be idempotent and resumable after a crash.
   */
  migrate?(
    sourceDir: string,
    target: S,
    options: { chunkSize: number; onProgress?: (p: MigrationProgress) => void },
  ): Promise<{ documents: number; resumedFrom: number }>
}
