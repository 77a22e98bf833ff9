import { join } from 'node:path'
import Database from 'better-sqlite3'
import { openDittoStore } from '../../../src/ditto/index.js'
import {
  type BuiltinMesh,
  createSyncRegistry,
  type Logger,
  type MeshStore,
  type MeshWriter,
  type ModelDefinition,
  openMesh,
  openSqliteRepository,
  type Repository,
  type SqliteRepository,
  type StartupReport,
  type SyncAdapter,
  type SyncContext,
  type SyncCoordinator,
  type SyncRegistry,
  type SyncSettings,
  type WriteResult,
} from '../../../src/index.js'
import { COUNTERS_DDL, counterAdapter, counterModel } from './counter-model.js'

/** Counts every write to `counters` from any connection (the bridge's included). */
const WRITE_COUNTER = `
CREATE TABLE IF NOT EXISTS test_writes (n INTEGER NOT NULL);
INSERT INTO test_writes (n) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM test_writes);
CREATE TRIGGER IF NOT EXISTS test_count_insert AFTER INSERT ON counters BEGIN UPDATE test_writes SET n = n + 1; END;
CREATE TRIGGER IF NOT EXISTS test_count_update AFTER UPDATE ON counters BEGIN UPDATE test_writes SET n = n + 1; END;
CREATE TRIGGER IF NOT EXISTS test_count_delete AFTER DELETE ON counters BEGIN UPDATE test_writes SET n = n + 1; END;
`

/** Mesh writes made through the port (by the bridge), counted after commit. */
export interface MeshWriteCount {
  changed: number
  unchanged: number
}

/** The mesh as the bridge sees it, counting the documents each write changed. */
export function countingMesh(
  mesh: MeshStore,
  counts: MeshWriteCount,
  beforeTransaction?: () => Promise<void>,
): MeshStore {
  const add = (into: MeshWriteCount, r: WriteResult) => {
    into.changed += r.changed.length
    into.unchanged += r.unchanged.length
    return r
  }
  return new Proxy(mesh, {
    get(target, prop) {
      if (prop === 'upsert')
        return async (...a: Parameters<MeshStore['upsert']>) => add(counts, await target.upsert(...a))
      if (prop === 'remove')
        return async (...a: Parameters<MeshStore['remove']>) => add(counts, await target.remove(...a))
      if (prop === 'transaction') {
        return async <T>(fn: (tx: MeshWriter) => Promise<T>) => {
          const local: MeshWriteCount = { changed: 0, unchanged: 0 }
          await beforeTransaction?.()
          const out = await target.transaction((tx) =>
            // Methods, not a spread: a backend's writer may keep them on its prototype.
            fn({
              upsert: async (...a) => add(local, await tx.upsert(...a)),
              remove: async (...a) => add(local, await tx.remove(...a)),
              increment: (...a) => tx.increment(...a),
              get: (...a) => tx.get(...a),
              find: (...a) => tx.find(...a),
            }),
          )
          counts.changed += local.changed
          counts.unchanged += local.unchanged
          return out
        }
      }
      const v = Reflect.get(target, prop, target)
      return typeof v === 'function' ? v.bind(target) : v
    },
  })
}

/** Which store a test node's mesh is. */
export type MeshBackend = 'builtin' | 'ditto'

/** Both backends, for `describe.each`. */
export const BACKENDS: readonly MeshBackend[] = ['builtin', 'ditto']

/** The Ditto database id every test node uses. */
export const TEST_DATABASE_ID = '3b8f2a61-5c47-4e0a-9d1b-7f6e2c9a4d15'

/**
 * Opens a mesh in `dir` on `backend`. On Ditto the counter fields of
 * `adapters` are declared up front, as an app would.
 */
export async function openTestMesh(
  backend: MeshBackend,
  dir: string,
  adapters: readonly SyncAdapter[] = [],
): Promise<MeshStore> {
  if (backend === 'builtin') return openMesh({ dir })
  const counterFields = Object.fromEntries(
    adapters.filter((a) => a.counterFields?.length).map((a) => [a.collection, a.counterFields ?? []]),
  )
  return openDittoStore({ dir, databaseId: TEST_DATABASE_ID, counterFields, diskLogs: false })
}

/** A test's title, with why it is skipped on Ditto when `backend` is Ditto. */
export function titleOn(backend: MeshBackend, title: string, skippedOnDitto: string): string {
  return backend === 'ditto' ? `${title} (skipped on Ditto: ${skippedOnDitto})` : title
}

/**
 * Why starting without catching up does not skip, on Ditto, what changed
 * while away: Ditto has no change sequence, and `currentCursor()` is the
 * latest change the store noticed. Changes that reached Ditto around the
 * store before start are noticed by the first pull's reconcile, and applied.
 */
export const DITTO_NOTICES_LATER =
  'currentCursor() is the latest change the store noticed, so changes written around it before start are found and applied by the first pull'

export interface NodeOptions {
  context?: SyncContext
  settings?: SyncSettings
  adapters?: SyncAdapter[]
  models?: ModelDefinition[]
  /** Extra DDL run by the app before the repository opens. */
  ddl?: string
  /** Start sync right away. Default true. */
  start?: boolean
  /** Count writes to counters. Default true. */
  countWrites?: boolean
  /** How often the repository looks for writes of other connections. */
  pollIntervalMs?: number
  /** Whether the repository watches the database file for such writes. Default true. */
  watchFile?: boolean
  /** The repository's threshold for reporting a long hold of the write lock. */
  longTransactionMs?: number
  /** Where the bridge's diagnostics go. */
  logger?: Logger
  /** Awaited before each of the bridge's mesh transactions (its pushes): holds them underway. */
  beforeMeshTransaction?: () => Promise<void>
  /** The repository as the bridge sees it (to stop a process at a chosen step). */
  wrapRepository?: (repository: SqliteRepository) => Repository
}

/** A node whose mesh may be either backend. */
export interface BackendNodeOptions extends NodeOptions {
  backend: MeshBackend
}

/** One device: its app database (with an app connection), its mesh, and sync. */
export interface TestNode<M extends MeshStore = BuiltinMesh> {
  dir: string
  dbFile: string
  /** The app's own connection. */
  db: Database.Database
  mesh: M
  /** Mesh writes made by the bridge. */
  meshWrites: MeshWriteCount
  repo: SqliteRepository
  registry: SyncRegistry
  startup: StartupReport | undefined
  readonly sync: SyncCoordinator
  /** Writes to counters so far, from any connection. */
  writes(): number
  close(): Promise<void>
}

/** Opens a device; its mesh is builtin unless `backend` says otherwise. */
export function openNode(dir: string, options: BackendNodeOptions): Promise<TestNode<MeshStore>>
export function openNode(dir: string, options?: NodeOptions): Promise<TestNode>
export async function openNode(
  dir: string,
  options: NodeOptions & { backend?: MeshBackend } = {},
): Promise<TestNode<MeshStore>> {
  const dbFile = join(dir, 'app.db')
  const db = new Database(dbFile)
  db.pragma('journal_mode = WAL')
  db.pragma('busy_timeout = 10000')
  db.exec(COUNTERS_DDL)
  if (options.countWrites !== false) db.exec(WRITE_COUNTER)
  if (options.ddl) db.exec(options.ddl)
  const adapters = options.adapters ?? [counterAdapter]
  const mesh = await openTestMesh(options.backend ?? 'builtin', join(dir, 'mesh'), adapters)
  const repo = await openSqliteRepository({
    file: dbFile,
    models: options.models ?? [counterModel],
    ...(options.pollIntervalMs ? { pollIntervalMs: options.pollIntervalMs } : {}),
    ...(options.watchFile === undefined ? {} : { watchFile: options.watchFile }),
    ...(options.longTransactionMs === undefined ? {} : { longTransactionMs: options.longTransactionMs }),
  })
  const meshWrites: MeshWriteCount = { changed: 0, unchanged: 0 }
  const registry = createSyncRegistry({
    mesh: countingMesh(mesh, meshWrites, options.beforeMeshTransaction),
    repository: options.wrapRepository ? options.wrapRepository(repo) : repo,
    adapters,
    context: options.context ?? { branchId: 1 },
    ...(options.settings ? { settings: options.settings } : {}),
    ...(options.logger ? { logger: options.logger } : {}),
  })
  const node: TestNode<MeshStore> = {
    dir,
    dbFile,
    db,
    mesh,
    meshWrites,
    repo,
    registry,
    startup: undefined,
    get sync() {
      return registry.coordinator
    },
    writes: () => (db.prepare('SELECT n FROM test_writes').pluck().get() as number | undefined) ?? 0,
    async close() {
      await registry.close()
      await repo.close()
      await mesh.close()
      db.close()
    },
  }
  if (options.start !== false) node.startup = await registry.start()
  return node
}

/** Rows of counters as the app sees them, ordered by id. */
export function rows(node: TestNode<MeshStore>, table = 'counters'): Record<string, unknown>[] {
  return node.db.prepare(`SELECT * FROM ${table} ORDER BY id`).all() as Record<string, unknown>[]
}
