import { createHash } from 'node:crypto'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import type Database from 'better-sqlite3'
import { ClosedError, ErrorCode, ValidationError } from '../errors.js'
import type { ConflictQuery, ConflictRecord } from '../mesh/conflict.js'
import type { DocIdInput, Document, DocumentInput } from '../mesh/document.js'
import type { FieldHistory } from '../mesh/field-history.js'
import { compileQuery } from '../mesh/filter.js'
import type {
  ChangeSet,
  ChangesSinceOptions,
  MeshStoreEvents,
  MeshWriter,
  ObserveOptions,
  Observer,
  ObserverListener,
  UpsertOptions,
  WriteResult,
} from '../mesh/mesh-store.js'
import type { Query, Scope } from '../mesh/query.js'
import { assertCollection, normaliseId, parseFieldPath, positiveLimit } from '../mesh/validate.js'
import { Emitter } from '../util/emitter.js'
import { Mutex } from '../util/mutex.js'
import { countConflicts, listConflicts } from './conflict-log.js'
import { STORE_FILE } from './database.js'
import { readFieldHistory } from './field-history.js'
import { fieldExpr } from './query-sql.js'
import { changesFor, changesSince, countScope, encodeCursor, encodedChangesFor, runQuery } from './reads.js'
import { RecentChanges } from './recent-changes.js'
import { committedReads, parseDoc, type StoreCore } from './store-core.js'
import type {
  ApplyRemoteOptions,
  ApplyRemoteResult,
  BuiltinMesh,
  BuiltinMeshStats,
  ChangeChunk,
  EncodedChunk,
  RemoteChange,
  SiteId,
  VersionVector,
} from './types.js'
import { storeWriteError } from './write-errors.js'
import { WriteSession } from './write-session.js'

/** The builtin engine's store. Created by `openMesh`. */
/** Changes after which the planner's statistics are first gathered. */
const ANALYZE_FIRST = 1000

export class BuiltinMeshStore implements BuiltinMesh {
  readonly siteId: SiteId
  readonly dir: string
  private readonly mutex = new Mutex()
  /** `commit` tells the replicator about each committed sequence; `observer-error` is the port's event. */
  private readonly events: Emitter<MeshStoreEvents & { commit: number }>
  private closing: Promise<void> | undefined
  private closed = false
  private analyzeAt = ANALYZE_FIRST
  private observerErrors = 0
  private readonly recent: RecentChanges
  private commits = 0
  /** Prepared once: `exec` parses its SQL on every call, and every write runs both. */
  private readonly begin: Database.Statement
  private readonly commit: Database.Statement

  constructor(private readonly core: StoreCore) {
    this.siteId = core.site
    this.dir = core.dir
    this.events = new Emitter(core.logger)
    this.recent = new RecentChanges(core.committedSeq)
    this.begin = core.writer.prepare('BEGIN IMMEDIATE')
    this.commit = core.writer.prepare('COMMIT')
  }

  // ---- writes ---------------------------------------------------------------

  upsert(collection: string, docs: readonly DocumentInput[], options?: UpsertOptions): Promise<WriteResult> {
    return this.write(false, (s) => s.upsert(collection, docs, options))
  }

  remove(collection: string, ids: readonly DocIdInput[]): Promise<WriteResult> {
    return this.write(false, (s) => s.remove(collection, ids))
  }

  increment(collection: string, id: DocIdInput, field: string, by: number): Promise<number> {
    return this.write(false, (s) => s.increment(collection, id, field, by))
  }

  transaction<T>(fn: (tx: MeshWriter) => Promise<T>): Promise<T> {
    return this.write(true, (s) => {
      const core = this.core
      const tx: MeshWriter = {
        upsert: async (c, d, o) => s.upsert(c, d, o),
        remove: async (c, ids) => s.remove(c, ids),
        increment: async (c, id, f, by) => s.increment(c, id, f, by),
        get: async (c, id) => getDoc(core, 'w', c, id),
        find: async (q) => runQuery(core.writer, compileQuery(q)),
      }
      return fn(tx)
    })
  }

  applyRemote(changes: readonly RemoteChange[], options?: ApplyRemoteOptions): Promise<ApplyRemoteResult> {
    return this.write(false, (s) => s.applyRemote(changes, options))
  }

  /**
   * `applyRemote` with `docJson[k]`, when given, being `JSON.stringify` of
   * `changes[k].doc` as measured by the caller (see `applyMeasured`).
   */
  applyMeasured(
    changes: readonly RemoteChange[],
    options: ApplyRemoteOptions,
    docJson: readonly (string | undefined)[],
  ): Promise<ApplyRemoteResult> {
    return this.write(false, (s) => s.applyRemote(changes, options, docJson))
  }

  async createIndex(collection: string, field: string): Promise<void> {
    assertCollection(collection)
    const path = parseFieldPath(field)
    const name = `ix_${collection}_${createHash('sha1').update(field).digest('hex').slice(0, 12)}`
    this.assertOpen()
    await this.mutex.run(() => {
      const db = this.core.writer
      db.exec(`CREATE INDEX IF NOT EXISTS "${name}" ON docs (collection, ${fieldExpr(path)})`)
      this.analyze()
      db.prepare('INSERT OR IGNORE INTO indexes (collection, field, name) VALUES (?, ?, ?)').run(
        collection,
        field,
        name,
      )
    })
  }

  /** Runs a write session in one transaction, then tells observers and commit listeners. */
  private write<T>(nested: boolean, fn: (s: WriteSession) => T | Promise<T>): Promise<T> {
    // Checked at call time: writes queued before close() still complete.
    if (this.closed || this.closing) return Promise.reject(new ClosedError(`The mesh store in ${this.dir}`))
    return this.mutex.run(async () => {
      const core = this.core
      const session = new WriteSession(core, nested)
      const startSeq = core.seq
      this.begin.run()
      let result: T
      try {
        // Every write but `transaction` is synchronous: it commits without a turn of the microtask queue.
        const out = fn(session)
        result = out instanceof Promise ? await out : out
        session.finish()
        this.commit.run()
      } catch (e) {
        if (core.writer.inTransaction) core.writer.exec('ROLLBACK')
        core.seq = startSeq
        throw storeWriteError(this.dir, e)
      }
      core.checkpointer?.committed(session.bytesWritten)
      this.commits++
      const changed = core.seq !== core.committedSeq
      const after = core.committedSeq
      session.committed()
      this.recent.committed(after, core.committedSeq, session.writtenRows(), session.rowVersions)
      if (core.committedSeq >= this.analyzeAt) this.analyze()
      if (changed) {
        if (session.entries.length > 0) core.observers.publish(session.entries)
        this.events.emit('commit', core.committedSeq)
      }
      for (const c of session.conflicts) this.events.emit('conflict', c)
      return result
    })
  }

  /**
   * Refreshes the planner's statistics (sampled, so it stays fast). Without
   * them SQLite prefers the (collection, id) index for `ORDER BY id` over a
   * selective field index. Repeated each time the store doubles in changes.
   */
  private analyze(): void {
    this.core.writer.exec('PRAGMA analysis_limit = 1000; ANALYZE docs')
    this.analyzeAt = Math.max(2 * this.core.committedSeq, ANALYZE_FIRST)
  }

  // ---- reads ----------------------------------------------------------------

  async get(collection: string, id: DocIdInput): Promise<Document | undefined> {
    this.assertOpen()
    return getDoc(this.core, committedReads(this.core).conn, collection, id)
  }

  async find(query: Query): Promise<Document[]> {
    this.assertOpen()
    return runQuery(committedReads(this.core).db, compileQuery(query))
  }

  async count(scope: Scope): Promise<number> {
    this.assertOpen()
    return countScope(committedReads(this.core).db, scope)
  }

  observe(query: Query, listener: ObserverListener, options?: ObserveOptions): Observer {
    this.assertOpen()
    return this.core.observers.register(query, listener, options)
  }

  async changesSince(cursor: string | null, scope: Scope, options: ChangesSinceOptions = {}): Promise<ChangeSet> {
    this.assertOpen()
    return changesSince(this.core, cursor, scope, positiveLimit(options.limit, 10_000))
  }

  async currentCursor(): Promise<string> {
    this.assertOpen()
    return encodeCursor(this.core, this.core.committedSeq)
  }

  async versionVector(): Promise<VersionVector> {
    this.assertOpen()
    return { ...this.core.vv }
  }

  async changesFor(peerVersionVector: VersionVector, after: number, limit: number): Promise<ChangeChunk> {
    this.assertOpen()
    if (!Number.isSafeInteger(after) || after < 0) {
      throw new ValidationError(ErrorCode.INVALID_OPTIONS, 'changesFor: after must be a non-negative integer.')
    }
    return changesFor(this.core, peerVersionVector, after, positiveLimit(limit, 1000))
  }

  /** `changesFor` with each change as JSON text, put together from the stored JSON (see `encodedChanges`). */
  async encodedChangesFor(peerVersionVector: VersionVector, after: number, limit: number): Promise<EncodedChunk> {
    this.assertOpen()
    if (!Number.isSafeInteger(after) || after < 0) {
      throw new ValidationError(ErrorCode.INVALID_OPTIONS, 'changesFor: after must be a non-negative integer.')
    }
    return encodedChangesFor(this.core, peerVersionVector, after, positiveLimit(limit, 1000))
  }

  /**
   * `encodedChangesFor` answered from the rows of the last local commits,
   * without reading the table, when they hold all it would read; otherwise
   * undefined. A live link's changes are the ones just committed.
   */
  recentChangesFor(peerVersionVector: VersionVector, after: number, limit: number): EncodedChunk | undefined {
    if (this.closed || this.closing || !Number.isSafeInteger(after) || after < 0) return undefined
    if (!Number.isSafeInteger(limit) || limit <= 0) return undefined
    return this.recent.changesFor(peerVersionVector, after, limit, this.core.committedSeq, this.core.vv)
  }

  /** Write transactions committed since the store opened (see `commitCount`), or undefined once closing. */
  commitCount(): number | undefined {
    return this.closed || this.closing ? undefined : this.commits
  }

  async peerCursor(from: string): Promise<number> {
    this.assertOpen()
    const row = this.core.reader.prepare('SELECT cursor FROM peers WHERE site = ?').pluck().get(from) as
      | number
      | undefined
    return row ?? 0
  }

  async conflicts(query?: ConflictQuery): Promise<ConflictRecord[]> {
    this.assertOpen()
    return listConflicts(this.core.reader, query)
  }

  async conflictCount(query?: Pick<ConflictQuery, 'collection'>): Promise<number> {
    this.assertOpen()
    return countConflicts(this.core.reader, query)
  }

  async fieldHistory(collection: string, id: DocIdInput): Promise<FieldHistory | undefined> {
    this.assertOpen()
    assertCollection(collection)
    return readFieldHistory(this.core, collection, normaliseId(id))
  }

  onCommit(listener: (sequence: number) => void): () => void {
    return this.events.on('commit', listener)
  }

  on<E extends keyof MeshStoreEvents>(event: E, listener: (payload: MeshStoreEvents[E]) => void): () => void {
    return this.events.on(event, listener)
  }

  /** Called by the observer hub when a listener fails. */
  reportObserverError(error: unknown, query: Query): void {
    this.observerErrors++
    this.core.logger.warn('observer listener failed', { collection: query.collection, error: String(error) })
    this.events.emit('observer-error', { error, query })
  }

  async collections(): Promise<string[]> {
    this.assertOpen()
    return this.core.reader
      .prepare('SELECT DISTINCT collection FROM docs ORDER BY collection')
      .pluck()
      .all() as string[]
  }

  async stats(): Promise<BuiltinMeshStats> {
    this.assertOpen()
    const counts = this.core.reader
      .prepare('SELECT count(doc) AS live, count(*) - count(doc) AS dead FROM docs')
      .get() as { live: number; dead: number }
    let diskBytes = 0
    for (const suffix of ['', '-wal', '-shm']) {
      try {
        diskBytes += statSync(join(this.dir, STORE_FILE + suffix)).size
      } catch {
        // The WAL and shared-memory files exist only while needed.
      }
    }
    return {
      documents: counts.live,
      tombstones: counts.dead,
      observers: this.core.observers.size,
      observerErrors: this.observerErrors,
      sequence: this.core.committedSeq,
      clockDriftExceeded: this.core.clock.driftExceededCount,
      remoteApplied: this.core.remoteApplied,
      diskBytes,
      backgroundCheckpoints: this.core.checkpointer?.stats().checkpoints ?? 0,
    }
  }

  // ---- lifecycle -------------------------------------------------------------

  close(): Promise<void> {
    this.closing ??= this.mutex.run(async () => {
      this.closed = true
      this.core.observers.cancelAll()
      this.events.clear()
      // Before the writer: its close, the last, copies what is left of the WAL and removes it.
      await this.core.checkpointer?.close()
      this.core.reader.close()
      this.core.writer.close()
    })
    return this.closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  private assertOpen(): void {
    if (this.closed || this.closing) throw new ClosedError(`The mesh store in ${this.dir}`)
  }
}

function getDoc(core: StoreCore, conn: 'r' | 'w', collection: string, id: DocIdInput): Document | undefined {
  assertCollection(collection)
  const row = core[conn].getDoc.get(collection, normaliseId(id))
  return row ? (parseDoc(row.doc) ?? undefined) : undefined
}
