import { resolve } from 'node:path'
import Database from 'better-sqlite3'
import { ClosedError, ErrorCode, MeshmirrorError, StorageError, ValidationError } from '../errors.js'
import { type Logger, silentLogger } from '../logger.js'
import { delay } from '../util/delay.js'
import { Mutex } from '../util/mutex.js'
import { WalCheckpointer } from '../util/wal-checkpointer.js'
import { busyBackoffMs, isBusy } from './busy-retry.js'
import { installSyncTables, isCapturing, setCapture, setKeyTriggers } from './change-capture.js'
import { ChangePoller } from './change-poller.js'
import {
  parentRef,
  parentsFirst,
  readForeignKeys,
  type UnindexedForeignKey,
  unindexedForeignKeys,
} from './foreign-keys.js'
import { deviceIdOf, KeyMap } from './key-map.js'
import { LockHold } from './lock-hold.js'
import { linkLocalRefs, type ModelDefinition, type ModelInfo, resolveModel } from './model-definition.js'
import { ParentCheck } from './parent-check.js'
import { ParkedStore } from './parked-store.js'
import { checkLimit, unknownModel } from './port-checks.js'
import { executeRemoteBatch, type RelationPlan, unblockedBy } from './remote-batch.js'
import type {
  CapturedChange,
  DocSyncState,
  DocSyncStateEntry,
  ParkedDocument,
  RemoteBatch,
  RemoteBatchResult,
  Repository,
  RepositoryEvents,
  RepositoryStats,
  RepositoryTx,
  Row,
  TransactionOptions,
} from './repository.js'
import { decodeRow } from './row-codec.js'
import { rowId } from './row-key.js'
import { ModelStatements } from './sqlite-statements.js'
import { sqliteTx } from './sqlite-tx.js'

/** This connection's automatic checkpoint: it bounds the WAL under sustained writes whatever else runs. */
const BACKSTOP_PAGES = 10_000

export interface SqliteRepositoryOptions {
  /** The application's SQLite database file. Created when missing. */
  file: string
  /** The models (tables) to mirror. */
  models: readonly ModelDefinition[]
  /**
   * How long SQLite itself waits for another writer before the repository
   * retries on its own, with backoff and without blocking the event loop.
   * Default 50 ms.
   */
  busyTimeoutMs?: number
  /**
   * How writes made by other connections or processes are found. `true`
   * (default): a watch on the database's directory wakes a check at once,
   * with a poll every second as a safety net (and every `pollIntervalMs`
   * where the file system delivers no notifications). `false`: polling
   * only, every `pollIntervalMs`.
   */
  watchFile?: boolean
  /** How often to look for writes made by other connections or processes when not watching. Default 25 ms. */
  pollIntervalMs?: number
  /**
   * `wal` (default) switches the database to write-ahead logging, so readers
   * never block the writer. `keep` leaves the journal mode as it is.
   */
  journalMode?: 'wal' | 'keep'
  /** `synchronous` for this connection. Default `normal` (durable across process crashes in WAL mode). */
  synchronous?: 'off' | 'normal' | 'full'
  /**
   * A transaction that holds the write lock this long (ms) or longer is
   * reported (`longTransaction` event, `stats().longTransactions`): an app
   * writing meanwhile waited as long. Default 1000.
   */
  longTransactionMs?: number
  /**
   * Where this connection's WAL checkpoints run. `background` (default): a
   * worker thread with its own connection copies the WAL into the database
   * while the bridge writes, so no apply waits for the copy and its syncs.
   * `inline`: on the event loop, when writes pause, and in the commit that
   * takes the WAL past 10,000 pages. Databases not in WAL mode have none.
   */
  checkpoints?: 'background' | 'inline'
  /** Where warnings go (a checkpoint worker that fails). Default: nowhere. */
  logger?: Logger
}

/** A {@link Repository} on a SQLite file, with trigger-based change capture. */
export interface SqliteRepository extends Repository {
  /** Absolute path of the database file. */
  readonly file: string
  /** True when the model's capture triggers are installed. */
  isCapturing(model: string): boolean
  /**
   * This database's device id: rows it creates in tables with keys `local`
   * have document ids `<device>:<key>`. Kept in the database, so it survives
   * restarts (and a copy of the file carries it: give a copied database a
   * new one before two devices use it, see the keys documentation).
   */
  readonly device: string
  /**
   * Foreign keys referencing the mirrored tables that no index of their
   * child table leads with: each removal of a parent row reads the whole
   * child table, holding the write lock meanwhile (see `longTransaction`).
   * Found when the repository opens.
   */
  readonly unindexedForeignKeys: readonly UnindexedForeignKey[]
}

/**
 * Opens the application's SQLite database as a {@link Repository}. Existing
 * tables are used as they are; missing ones are created from their declared
 * columns. meshmirror's own tables (`_meshmirror_*`) are created alongside.
 *
 * @example
 * ```ts
 * await using repo = await openSqliteRepository({ file: './pos.db', models: [{ name: 'counters' }] })
 * ```
 */
export async function openSqliteRepository(options: SqliteRepositoryOptions): Promise<SqliteRepository> {
  const opts = checkOptions(options)
  const file = resolve(opts.file)
  let writer: Database.Database | undefined
  let reader: Database.Database | undefined
  try {
    writer = new Database(file)
    writer.pragma(`busy_timeout = ${opts.busyTimeoutMs ?? 50}`)
    writer.pragma(`wal_autocheckpoint = ${BACKSTOP_PAGES}`)
    for (let attempt = 0; ; attempt++) {
      try {
        if (opts.journalMode !== 'keep') writer.pragma('journal_mode = WAL')
        writer.pragma(`synchronous = ${opts.synchronous ?? 'normal'}`)
        writer.exec('BEGIN IMMEDIATE')
        break
      } catch (e) {
        if (!isBusy(e)) throw e
        await delay(busyBackoffMs(attempt))
      }
    }
    const models = new Map<string, ModelInfo>()
    let device: string
    try {
      installSyncTables(writer, file)
      for (const def of opts.models) {
        if (models.has(def.name)) {
          throw new ValidationError(ErrorCode.INVALID_MODEL, `Model ${def.name} is defined twice.`, {
            details: { model: def.name },
          })
        }
        models.set(def.name, resolveModel(writer, def))
      }
      linkLocalRefs(models.values())
      for (const m of models.values()) setKeyTriggers(writer, m)
      device = deviceIdOf(writer)
      writer.exec('COMMIT')
    } catch (e) {
      if (writer.inTransaction) writer.exec('ROLLBACK')
      throw e
    }
    reader = new Database(file, { readonly: true })
    reader.pragma('busy_timeout = 1000')
    return new SqliteRepositoryImpl(file, writer, reader, relationPlan(writer, models, device), device, opts)
  } catch (cause) {
    reader?.close()
    writer?.close()
    if (cause instanceof MeshmirrorError) throw cause
    throw new StorageError(
      ErrorCode.DATABASE_UNUSABLE,
      `Cannot open the database ${file}: ${(cause as Error).message}`,
      { cause, details: { file } },
    )
  }
}

function checkOptions(options: SqliteRepositoryOptions): SqliteRepositoryOptions {
  const bad = (m: string) => new ValidationError(ErrorCode.INVALID_OPTIONS, `openSqliteRepository: ${m}`)
  if (typeof options !== 'object' || options === null) throw bad('options must be an object with file and models.')
  if (typeof options.file !== 'string' || options.file.length === 0) throw bad('file must be a non-empty path.')
  if (!Array.isArray(options.models)) throw bad('models must be an array of model definitions.')
  for (const key of ['busyTimeoutMs', 'pollIntervalMs', 'longTransactionMs'] as const) {
    const v = options[key]
    if (v !== undefined && (!Number.isFinite(v) || v < 0)) throw bad(`${key} must be a non-negative number.`)
  }
  if (options.watchFile !== undefined && typeof options.watchFile !== 'boolean')
    throw bad('watchFile must be a boolean.')
  if (options.journalMode !== undefined && !['wal', 'keep'].includes(options.journalMode)) {
    throw bad("journalMode must be 'wal' or 'keep'.")
  }
  if (options.synchronous !== undefined && !['off', 'normal', 'full'].includes(options.synchronous)) {
    throw bad("synchronous must be 'off', 'normal' or 'full'.")
  }
  if (options.checkpoints !== undefined && !['background', 'inline'].includes(options.checkpoints)) {
    throw bad("checkpoints must be 'background' or 'inline'.")
  }
  return options
}

/** Apply order and parent lookups of the models, from their foreign keys. */
function relationPlan(writer: Database.Database, models: Map<string, ModelInfo>, device: string): RelationPlan {
  const keys = new KeyMap(writer, device)
  const ordered = parentsFirst([...models.values()])
  const referencedBy = new Map<string, { ref: string; columns: string[] }[]>()
  for (const m of ordered) {
    for (const fk of m.foreignKeys) {
      const ref = parentRef(fk)
      const list = referencedBy.get(fk.table) ?? []
      if (!list.some((r) => r.ref === ref)) list.push({ ref, columns: fk.to })
      referencedBy.set(fk.table, list)
    }
  }
  // Tables referenced from tables not mirrored: their rows' going is never seen here.
  const mirrored = new Set(ordered.map((m) => m.table))
  const referencedUnmirrored = new Set<string>()
  const tables = writer
    .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
    .pluck()
    .all() as string[]
  const restrictedBy = new Map<string, { table: string; from: string[]; to: string[] }[]>()
  for (const table of tables) {
    for (const fk of readForeignKeys(writer, table)) {
      if (!mirrored.has(table)) referencedUnmirrored.add(fk.table)
      // CASCADE, SET NULL and SET DEFAULT let the parent go.
      if (!mirrored.has(fk.table) || !['NO ACTION', 'RESTRICT'].includes(fk.onDelete.toUpperCase())) continue
      const list = restrictedBy.get(fk.table) ?? []
      list.push({ table, from: fk.from, to: fk.to })
      restrictedBy.set(fk.table, list)
    }
  }
  return {
    models: new Map(ordered.map((m) => [m.name, m])),
    order: ordered.map((m) => m.name),
    referencedUnmirrored,
    restrictedBy,
    enforced: writer.pragma('foreign_keys', { simple: true }) === 1,
    translated: ordered.some((m) => m.localRefs.size > 0),
    referencedBy,
    parents: new ParentCheck(writer, models, keys),
    keys,
  }
}

/**
 * SQLite does not queue writers: an app waiting on its busy timeout polls
 * for the write lock (every 100 ms at most with SQLite's default handler,
 * later still on a loaded machine), and transactions run back to back (a
 * catch-up's batches) leave it no moment free, however short each one is.
 * The time the lock was held is summed, fading with a time constant of
 * LOCK_RUN_MS; once it reaches what LOCK_RUN_MS of back-to-back
 * transactions add up to (LOCK_HELD_LIMIT), the repository leaves the lock
 * free for LOCK_PAUSE_MS, so a waiting app gets in within about a second,
 * not after its busy timeout ran out with SQLITE_BUSY. Transactions that
 * hold the lock less than about 63 % of the time never wait: an app's
 * polls find it free (a live change now and then used to wait up to
 * LOCK_PAUSE_MS once a second when changes came less than LOCK_PAUSE_MS
 * apart).
 */
const LOCK_RUN_MS = 1000
const LOCK_HELD_LIMIT = LOCK_RUN_MS * (1 - Math.exp(-1))

const batchRecords = (batch: RemoteBatch): number => batch.groups.reduce((n, g) => n + g.writes.length, 0)
const LOCK_PAUSE_MS = 250

class SqliteRepositoryImpl implements SqliteRepository {
  readonly capturesChanges = true
  private readonly mutex = new Mutex()
  private readonly w: ModelStatements
  private readonly r: ModelStatements
  private readonly parkedW: ParkedStore
  private readonly parkedR: ParkedStore
  private readonly modelInfo: ReadonlyMap<string, ModelInfo>
  private readonly busyListeners = new Set<(p: RepositoryEvents['busy']) => void>()
  private readonly longListeners = new Set<(p: RepositoryEvents['longTransaction']) => void>()
  private readonly counters: Required<Omit<RepositoryStats, 'backgroundCheckpoints' | 'changeDetection'>> = {
    transactions: 0,
    busyRetries: 0,
    longTransactions: 0,
    longestHoldMs: 0,
    lockPauses: 0,
  }
  private readonly hold = new LockHold()
  private readonly longTransactionMs: number
  readonly unindexedForeignKeys: readonly UnindexedForeignKey[]
  private readonly closeController = new AbortController()
  private readonly tx: RepositoryTx
  private inTx = false
  private readonly poller: ChangePoller
  private checkpointTimer: NodeJS.Timeout | undefined
  /** Runs the WAL's checkpoints off the event loop (`checkpoints: 'background'`, WAL mode). */
  private readonly checkpointer: WalCheckpointer | undefined
  private closing: Promise<void> | undefined
  /** When this connection last let the write lock go. */
  private lockFreeSince = Number.NEGATIVE_INFINITY
  /** Milliseconds the write lock was held, fading with a time constant of LOCK_RUN_MS, as of `lockHeldAt`. */
  private lockHeld = 0
  private lockHeldAt = 0

  constructor(
    readonly file: string,
    private readonly writer: Database.Database,
    private readonly reader: Database.Database,
    private readonly relations: RelationPlan,
    /** This database's device id (names the rows it creates in `local`-keyed models). */
    readonly device: string,
    options: SqliteRepositoryOptions,
  ) {
    this.modelInfo = relations.models
    this.unindexedForeignKeys = unindexedForeignKeys(
      writer,
      new Set([...relations.models.values()].map((m) => m.table)),
    )
    this.longTransactionMs = options.longTransactionMs ?? 1000
    this.w = new ModelStatements(writer, relations.keys)
    this.r = new ModelStatements(reader, new KeyMap(reader, device))
    this.parkedW = new ParkedStore(writer)
    this.parkedR = new ParkedStore(reader)
    this.tx = sqliteTx({
      writer,
      statements: this.w,
      parked: this.parkedW,
      model: (name) => this.model(name),
      active: () => this.inTx,
    })
    if (options.checkpoints !== 'inline' && String(writer.pragma('journal_mode', { simple: true })) === 'wal') {
      this.checkpointer = new WalCheckpointer({
        file,
        writer,
        logger: options.logger ?? silentLogger,
        backstopPages: BACKSTOP_PAGES,
        fallbackPages: BACKSTOP_PAGES,
      })
    }
    this.poller = new ChangePoller(
      reader,
      this.r,
      options.pollIntervalMs ?? 25,
      options.watchFile === false ? undefined : file,
      options.logger ?? silentLogger,
    )
  }

  get location(): string {
    return this.file
  }

  models(): string[] {
    return [...this.modelInfo.keys()]
  }

  keyColumns(model: string): string[] {
    return [...this.model(model).keys]
  }

  rowId(model: string, row: Row): string {
    return rowId(this.model(model), row)
  }

  isCapturing(model: string): boolean {
    this.assertOpen()
    return isCapturing(this.reader, this.model(model))
  }

  // ---- reads (committed data, on the reader connection) ---------------------

  async get(model: string, id: string): Promise<Row | undefined> {
    this.assertOpen()
    const m = this.model(model)
    return this.snapshot(m, () => this.r.get(m, id))
  }

  async getMany(model: string, ids: readonly string[]): Promise<Map<string, Row>> {
    this.assertOpen()
    const m = this.model(model)
    return this.snapshot(m, () => this.r.getMany(m, ids))
  }

  async scan(model: string, options: { after?: string | null; limit: number }): Promise<Row[]> {
    this.assertOpen()
    const m = this.model(model)
    return this.snapshot(m, () => this.r.scan(m, options.after ?? null, checkLimit(options.limit), false))
  }

  /**
   * Runs a read in one snapshot when it takes several statements (rows, then
   * the keys of `local` models they hold), so a commit in between cannot pair
   * a row with another row's id.
   */
  private snapshot<T>(m: ModelInfo, read: () => T): T {
    return m.localRefs.size === 0 ? read() : this.reader.transaction(read)()
  }

  async count(model: string): Promise<number> {
    this.assertOpen()
    return this.r.count(this.model(model), false)
  }

  async unmirrored(model: string, options: { after?: string | null; limit: number }): Promise<Row[]> {
    this.assertOpen()
    const m = this.model(model)
    return this.snapshot(m, () => this.r.scan(m, options.after ?? null, checkLimit(options.limit), true))
  }

  async countUnmirrored(model: string): Promise<number> {
    this.assertOpen()
    return this.r.count(this.model(model), true)
  }

  async syncStates(
    model: string,
    ids: readonly string[],
    options: { documents?: boolean } = {},
  ): Promise<Map<string, DocSyncState>> {
    this.assertOpen()
    return this.r.syncStates(this.model(model).name, ids, options.documents ?? true)
  }

  async allSyncStates(model: string, limit: number): Promise<Map<string, DocSyncState> | undefined> {
    this.assertOpen()
    return this.r.allSyncStates(this.model(model).name, checkLimit(limit))
  }

  async syncStatePage(model: string, options: { after: string | null; limit: number }): Promise<DocSyncStateEntry[]> {
    this.assertOpen()
    return this.r.syncStatePage(this.model(model).name, options.after, checkLimit(options.limit))
  }

  async checkpoint(key: string): Promise<string | undefined> {
    this.assertOpen()
    return this.r.checkpoint(key)
  }

  async parked(options: { model?: string; state?: ParkedDocument['state']; limit: number }): Promise<ParkedDocument[]> {
    this.assertOpen()
    return this.parkedR.list({ ...options, limit: checkLimit(options.limit) })
  }

  async unblockedBy(model: string, rows: readonly Row[], removed?: readonly Row[]): Promise<Map<string, string[]>> {
    this.assertOpen()
    const out = new Map<string, string[]>()
    unblockedBy(this.parkedR, this.relations, this.model(model), rows, out, removed)
    return out
  }

  async parkedCounts(): Promise<{ parked: number; refused: number }> {
    this.assertOpen()
    return this.parkedR.counts()
  }

  async pendingChanges(options: { models: readonly string[]; limit: number }): Promise<CapturedChange[]> {
    this.assertOpen()
    return this.r.pendingChanges(options.models, checkLimit(options.limit)).map((c) => {
      if (c.old === null) return { ...c, old: null }
      const m = this.model(c.model)
      const old = decodeRow(m, JSON.parse(c.old) as Record<string, unknown>)
      return { ...c, old: m.localRefs.size === 0 ? old : this.r.keys.toMesh(m, old) }
    })
  }

  async rowsAt(model: string, ids: readonly string[], seq: number): Promise<Map<string, Row>> {
    this.assertOpen()
    const info = this.model(model)
    // One read transaction: the rows and the later changes are of the same moment.
    return this.reader.transaction(() => {
      const rows = this.r.getMany(info, ids)
      for (const later of this.r.firstChangesAfter(info.name, ids, seq)) {
        // A delete captured by an older version did not record the row before it: keep the row as it is.
        if (later.op === 'delete' && later.old === null) continue
        if (later.old === null) {
          rows.delete(later.id)
          continue
        }
        const old = decodeRow(info, JSON.parse(later.old) as Record<string, unknown>)
        rows.set(later.id, info.localRefs.size === 0 ? old : this.r.keys.toMesh(info, old))
      }
      return rows
    })()
  }

  async pendingChangeCount(models: readonly string[]): Promise<{ count: number; oldestAt: number | null }> {
    this.assertOpen()
    return this.r.pendingChangeCount(models)
  }

  // ---- writes ----------------------------------------------------------------

  upsert(model: string, rows: readonly Row[]): Promise<number> {
    return this.transaction((tx) => tx.upsert(model, rows))
  }

  delete(model: string, ids: readonly string[]): Promise<number> {
    return this.transaction((tx) => tx.delete(model, ids))
  }

  async setChangeCapture(model: string, enabled: boolean): Promise<void> {
    const info = this.model(model)
    await this.transaction(async () => setCapture(this.writer, info, enabled, this.device))
  }

  transaction<T>(fn: (tx: RepositoryTx) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    if (this.closing) return Promise.reject(new ClosedError(`The repository ${this.file}`))
    const remote = options.origin === 'remote'
    return this.mutex.run(async () => {
      await this.shareLock(options.signal)
      for (let attempt = 0; ; attempt++) {
        try {
          this.writer.exec('BEGIN IMMEDIATE')
        } catch (e) {
          if (!isBusy(e)) throw e
          await this.waitBusy(attempt, e, options.signal)
          continue
        }
        this.inTx = true
        this.hold.begun()
        try {
          if (remote) this.w.setFlag()
          const result = await fn(this.tx)
          if (remote) this.w.clearFlag()
          this.hold.committing()
          this.writer.exec('COMMIT')
          this.inTx = false
          this.counters.transactions++
          this.scheduleCheckpoint()
          if (!remote) this.poller.check()
          return result
        } catch (e) {
          this.inTx = false
          if (this.writer.inTransaction) this.writer.exec('ROLLBACK')
          if (!isBusy(e)) throw e
          await this.waitBusy(attempt, e, options.signal)
        } finally {
          this.heldLock(remote ? 'remote' : 'local')
        }
      }
    })
  }

  /** Counts a hold of the write lock that just ended, and reports it when long. Returns how long it was (ms). */
  private heldLock(origin: 'remote' | 'local', records?: number): number {
    const now = performance.now()
    this.lockFreeSince = now
    const held = this.hold.ended(this.longTransactionMs, origin, records)
    if (!held) return 0
    this.lockHeld = this.recentlyHeld(now) + held.heldMs
    this.lockHeldAt = now
    if (held.heldMs > this.counters.longestHoldMs) this.counters.longestHoldMs = Math.round(held.heldMs)
    if (held.long) {
      this.counters.longTransactions++
      for (const l of this.longListeners) l(held.long)
    }
    return held.heldMs
  }

  /** The write lock's recent holding time, faded to `now` (see LOCK_RUN_MS). */
  private recentlyHeld(now: number): number {
    return this.lockHeld * Math.exp(-(now - this.lockHeldAt) / LOCK_RUN_MS)
  }

  /** Leaves the write lock free for a moment when this connection has held it too long (see LOCK_RUN_MS). */
  private async shareLock(signal: AbortSignal | undefined): Promise<void> {
    const now = performance.now()
    if (this.recentlyHeld(now) < LOCK_HELD_LIMIT) return
    const wait = LOCK_PAUSE_MS - (now - this.lockFreeSince)
    if (wait > 0) {
      this.counters.lockPauses++
      await delay(wait, signal, this.closeController.signal)
    }
    this.lockHeld = 0
  }

  /**
   * After each commit: the checkpoint worker, when there is one, copies the
   * WAL while writes come in. Once writes pause, what is left is copied too,
   * by the worker or, with none running (a WAL too small to have started
   * it, `checkpoints: 'inline'`, a failed worker), here, so that bursts of
   * applies do not stop for the checkpoint's syncs midway. The connection's
   * automatic checkpoint, at 10,000 pages, bounds the WAL under sustained
   * load either way.
   */
  private scheduleCheckpoint(): void {
    this.checkpointer?.committed()
    if (this.checkpointTimer) clearTimeout(this.checkpointTimer)
    this.checkpointTimer = setTimeout(() => {
      this.checkpointTimer = undefined
      if (this.closing || this.mutex.pending > 0) return
      if (this.checkpointer?.request(false)) return
      try {
        this.writer.pragma('wal_checkpoint(PASSIVE)')
      } catch {
        // PASSIVE never waits; a failed attempt is retried after the next write.
      }
    }, 200)
    this.checkpointTimer.unref()
  }

  private async waitBusy(attempt: number, error: unknown, signal: AbortSignal | undefined): Promise<void> {
    const waitMs = busyBackoffMs(attempt)
    this.counters.busyRetries++
    for (const l of this.busyListeners) l({ attempt, waitMs, error })
    await delay(waitMs, signal, this.closeController.signal)
  }

  /**
   * Runs a batch of received changes as one synchronous transaction: nothing
   * else runs on this connection (or, being synchronous, on this thread)
   * while it holds the write lock.
   */
  applyRemoteBatch(batch: RemoteBatch, options: { signal?: AbortSignal } = {}): Promise<RemoteBatchResult> {
    if (this.closing) return Promise.reject(new ClosedError(`The repository ${this.file}`))
    return this.mutex.run(async () => {
      let isolate = false
      let heldMs = 0
      const records = batchRecords(batch)
      for (let attempt = 0; ; attempt++) {
        await this.shareLock(options.signal)
        let result: RemoteBatchResult
        try {
          result = executeRemoteBatch(this.writer, this.w, this.parkedW, this.relations, batch, isolate, this.hold)
        } catch (error) {
          heldMs += this.heldLock('remote', records)
          if (isBusy(error)) await this.waitBusy(attempt, error, options.signal)
          // One record failed the batch: write record by record and refuse only the failing ones.
          else if (!isolate) isolate = true
          else throw error
          continue
        }
        result.heldMs = heldMs + this.heldLock('remote', records)
        this.counters.transactions++
        this.scheduleCheckpoint()
        return result
      }
    })
  }

  // ---- change notifications ------------------------------------------------------

  onChanges(listener: () => void): () => void {
    return this.poller.add(listener)
  }

  // ---- misc ------------------------------------------------------------------------

  stats(): RepositoryStats {
    return {
      ...this.counters,
      backgroundCheckpoints: this.checkpointer?.stats().checkpoints ?? 0,
      changeDetection: this.poller.detection(),
    }
  }

  on<E extends keyof RepositoryEvents>(event: E, listener: (payload: RepositoryEvents[E]) => void): () => void {
    const listeners = (
      event === 'busy' ? this.busyListeners : event === 'longTransaction' ? this.longListeners : undefined
    ) as Set<typeof listener> | undefined
    if (!listeners) throw new ValidationError(ErrorCode.INVALID_OPTIONS, `Unknown event ${String(event)}.`)
    listeners.add(listener)
    return () => listeners.delete(listener)
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      this.poller.stop()
      if (this.checkpointTimer) clearTimeout(this.checkpointTimer)
      // Running transactions finish; queued ones run too (they were accepted before close).
      await this.mutex.run(() => undefined)
      this.closeController.abort(new ClosedError(`The repository ${this.file}`))
      // The worker's connection closes first: the writer's close, the last of this process, copies what is left.
      await this.checkpointer?.close()
      this.reader.close()
      this.writer.close()
    })()
    return this.closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  private model(name: string): ModelInfo {
    const info = this.modelInfo.get(name)
    if (!info) throw unknownModel(name, this.file, this.models())
    return info
  }

  private assertOpen(): void {
    if (this.closing) throw new ClosedError(`The repository ${this.file}`)
  }
}
