import pg from 'pg'
import { ClosedError, ErrorCode, hasCode, MeshmirrorError, StorageError, ValidationError } from '../errors.js'
import { parentRef, parentsFirst } from '../repository/foreign-keys.js'
import { checkDefinition, type ModelDefinition } from '../repository/model-definition.js'
import { checkLimit, unknownModel } from '../repository/port-checks.js'
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
} from '../repository/repository.js'
import { rowId } from '../repository/row-key.js'
import { backoffMs } from '../util/backoff.js'
import { delay } from '../util/delay.js'
import { Mutex } from '../util/mutex.js'
import { isRetryable, type PgRelationPlan, pgUnblockedBy, runPgBatch } from './pg-batch.js'
import {
  APPLYING_SETTING,
  type CaptureModel,
  captureFunctionSql,
  captureNames,
  captureTriggerSql,
  channelOf,
  lit,
  PG_SYNC_SCHEMA_VERSION,
  q,
  SESSION_SETTINGS,
  syncDdl,
} from './pg-capture.js'
import { OutboxListener } from './pg-listener.js'
import { decodeOld, type PgModel, pgModel } from './pg-model.js'
import { type PgTable, readPgTables, type TextQuery } from './pg-schema.js'
import { PgStore, type Queryable } from './pg-store.js'
import { KEY_KINDS, sqlTypeOf } from './pg-types.js'

export interface PostgresRepositoryOptions {
  /** The database: `postgres://user@host:5432/db` (any libpq-style URL the `pg` driver takes). */
  connectionString: string
  /** The models (tables) to mirror. */
  models: readonly ModelDefinition[]
  /** The schema holding the app's tables. Default `public`. */
  schema?: string
  /** The schema meshmirror's own tables and trigger functions live in (created when missing). Default `meshmirror`. */
  syncSchema?: string
  /** Connections in the pool (the writer, reads, the status). Default 4; one more connection listens. */
  poolSize?: number
  /**
   * How long one of meshmirror's statements waits for a row or table lock an
   * app transaction holds before it gives way, rolls back and retries with
   * backoff. Shorter than the server's `deadlock_timeout` (1 s by default), so
   * a deadlock with an app transaction is resolved by meshmirror stepping
   * back, never by failing the app's transaction. Default 500 ms.
   */
  lockTimeoutMs?: number
}

/** What `meshmirror status` shows of a Postgres repository. */
export interface PostgresRepositoryState {
  kind: 'postgres'
  pool: { size: number; total: number; idle: number; waiting: number }
  /** Captured changes not yet acknowledged, and the capture time of the oldest. */
  outbox: { depth: number; oldestAt: number | null }
  /** Whether the LISTEN connection is up (capture wakes the mirror through it). */
  listening: boolean
  listenReconnects: number
}

/** A {@link Repository} on a PostgreSQL database, with trigger-based change capture woken by LISTEN/NOTIFY. */
export interface PostgresRepository extends Repository {
  readonly schema: string
  readonly syncSchema: string
  /** True when the model's capture trigger is installed. */
  isCapturing(model: string): Promise<boolean>
  /** The pool and the outbox, for status displays. */
  state(): Promise<PostgresRepositoryState>
}

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]{0,47}$/

/** The connection string with its password left out, for messages. */
export function redactUrl(url: string): string {
  if (!isPostgresUrl(url)) return url
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return url.replace(/:[^:@/]*@/, ':***@')
  }
}

/** True for a `postgres://` or `postgresql://` URL. */
export function isPostgresUrl(value: string): boolean {
  return /^postgres(ql)?:\/\//i.test(value)
}

/** The pool's driver settings: every value read as Postgres's text (see pg-types.ts), the session in UTC and ISO. */
export function pgConfig(connectionString: string): pg.PoolConfig {
  const options = Object.entries(SESSION_SETTINGS)
    .map(([k, v]) => `-c ${k}=${v.replaceAll(' ', '\\ ')}`)
    .join(' ')
  return {
    connectionString,
    options,
    types: { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig,
    application_name: 'meshmirror',
  }
}

function checkOptions(o: PostgresRepositoryOptions): Required<Omit<PostgresRepositoryOptions, 'models'>> & {
  models: readonly ModelDefinition[]
} {
  const bad = (m: string) => new ValidationError(ErrorCode.INVALID_OPTIONS, `openPostgresRepository: ${m}`)
  if (typeof o !== 'object' || o === null) throw bad('options must be an object with connectionString and models.')
  if (typeof o.connectionString !== 'string' || !isPostgresUrl(o.connectionString)) {
    throw bad('connectionString must be a postgres:// URL.')
  }
  if (!Array.isArray(o.models)) throw bad('models must be an array of model definitions.')
  for (const key of ['schema', 'syncSchema'] as const) {
    const v = o[key]
    if (v !== undefined && (typeof v !== 'string' || !NAME_RE.test(v))) {
      throw bad(`${key} must be a schema name of letters, digits and _ (at most 48).`)
    }
  }
  if (o.poolSize !== undefined && (!Number.isSafeInteger(o.poolSize) || o.poolSize < 2)) {
    throw bad('poolSize must be an integer of at least 2.')
  }
  if (o.lockTimeoutMs !== undefined && (!Number.isFinite(o.lockTimeoutMs) || o.lockTimeoutMs < 1)) {
    throw bad('lockTimeoutMs must be a positive number.')
  }
  return {
    connectionString: o.connectionString,
    models: o.models,
    schema: o.schema ?? 'public',
    syncSchema: o.syncSchema ?? 'meshmirror',
    poolSize: o.poolSize ?? 4,
    lockTimeoutMs: o.lockTimeoutMs ?? 500,
  }
}

const invalidModel = (message: string, details: Record<string, unknown>) =>
  new ValidationError(ErrorCode.INVALID_MODEL, message, { details })

/** Resolves a definition against the catalog; returns the CREATE TABLE to run when the table is missing. */
function resolveModel(def: ModelDefinition, tables: Map<string, PgTable>, schema: string): PgModel | string {
  checkDefinition(def)
  const table = def.table ?? def.name
  if (def.keys === 'local') {
    throw invalidModel(
      `Model ${def.name}: keys "local" is not available on Postgres. Rows a till creates with local integer keys arrive as document ids ("<device>:<key>"): give the head office's table a text key and map it with keys "global" (see docs/postgres.md).`,
      { model: def.name, table },
    )
  }
  const t = tables.get(table)
  if (!t) {
    const columns = def.columns
    if (!columns || Object.keys(columns).length === 0) {
      throw invalidModel(
        `Table ${schema}.${table} for model ${def.name} does not exist and the model declares no columns to create it with. Create the table, or declare its columns.`,
        { model: def.name, table },
      )
    }
    const pk = def.primaryKey === undefined ? ['id'] : [def.primaryKey].flat()
    const notDeclared = pk.filter((k) => !(k in columns))
    if (notDeclared.length > 0) {
      throw invalidModel(
        `Model ${def.name}: primary key ${notDeclared.join(', ')} is not among its declared columns.`,
        {
          model: def.name,
        },
      )
    }
    const parts = Object.entries(columns).map(([n, type]) => `${q(n)} ${sqlTypeOf(type)}`)
    parts.push(`PRIMARY KEY (${pk.map(q).join(', ')})`)
    return `CREATE TABLE IF NOT EXISTS ${q(schema)}.${q(table)} (${parts.join(', ')})`
  }
  if (t.keys.length === 0) {
    throw invalidModel(
      `Table ${schema}.${table} (model ${def.name}) has no primary key. A mirrored row needs an identity that is the same on every device: add a PRIMARY KEY.`,
      { model: def.name, table },
    )
  }
  const declared = def.primaryKey === undefined ? undefined : [def.primaryKey].flat()
  if (declared !== undefined && declared.join('\u0000') !== t.keys.join('\u0000')) {
    throw invalidModel(
      `Model ${def.name} declares primary key ${declared.join(', ')}, but table ${table}'s primary key is ${t.keys.join(', ')}.`,
      { model: def.name, table },
    )
  }
  const missing = Object.keys(def.columns ?? {}).filter((c) => !t.columns.some((x) => x.name === c))
  if (missing.length > 0) {
    throw invalidModel(
      `Model ${def.name} declares column(s) ${missing.join(', ')} that table ${table} does not have. Add them to the table (ALTER TABLE … ADD COLUMN) or remove them from the model.`,
      { model: def.name, table, missing },
    )
  }
  for (const k of t.keys) {
    const c = t.columns.find((x) => x.name === k)!
    if (!KEY_KINDS.has(c.kind)) {
      throw invalidModel(
        `Table ${table}'s key column ${k} is ${c.sqlType}; a mirrored key is an integer, numeric, text, varchar, uuid or date column.`,
        { model: def.name, table, column: k },
      )
    }
  }
  return pgModel({
    name: def.name,
    schema,
    table,
    keys: t.keys,
    columns: t.columns,
    foreignKeys: t.foreignKeys,
  })
}

function textQuery(db: Queryable): TextQuery {
  return async (sql, params = []) => (await db.query<Record<string, string | null>>(sql, params)).rows
}

/**
 * Opens a PostgreSQL database as a {@link Repository}, through a pool of the
 * `pg` driver's connections. Existing tables are read from the catalog
 * (keys, foreign keys, column types); missing ones are created from their
 * declared columns. meshmirror's own tables and trigger functions go in the
 * sync schema (`meshmirror`), created when missing.
 *
 * @example
 * ```ts
 * await using repo = await openPostgresRepository({
 *   connectionString: 'postgres://mirror@127.0.0.1/shop',
 *   models: [{ name: 'products' }],
 * })
 * ```
 */
export async function openPostgresRepository(options: PostgresRepositoryOptions): Promise<PostgresRepository> {
  const opts = checkOptions(options)
  const location = redactUrl(opts.connectionString)
  const config = pgConfig(opts.connectionString)
  const pool = new pg.Pool({ ...config, max: opts.poolSize })
  // An idle connection the server closed is dropped by the pool; the error is not the app's.
  pool.on('error', () => undefined)
  let listener: OutboxListener | undefined
  try {
    const client = await pool.connect()
    let models: Map<string, PgModel>
    try {
      models = await install(client, opts)
    } finally {
      client.release()
    }
    listener = new OutboxListener(config, channelOf(opts.syncSchema))
    await listener.start()
    return new PostgresRepositoryImpl(location, pool, listener, models, opts)
  } catch (cause) {
    await listener?.stop()
    await pool.end().catch(() => undefined)
    if (cause instanceof MeshmirrorError) throw cause
    throw new StorageError(
      ErrorCode.DATABASE_UNUSABLE,
      `Cannot open the database ${location}: ${(cause as Error).message}`,
      {
        cause,
        details: { database: location, ...(pgErrorCode(cause) ? { code: pgErrorCode(cause) } : {}) },
      },
    )
  }
}

function isConnectionFailure(error: unknown): boolean {
  const message = (error as Error | null)?.message ?? ''
  return !pgErrorCode(error) && /Connection terminated|connection error|ECONNRESET|EPIPE/i.test(message)
}

function pgErrorCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) ? code : undefined
}

/** Creates the sync schema when missing, resolves the models, refreshes the capture functions. */
async function install(client: pg.PoolClient, opts: ReturnType<typeof checkOptions>): Promise<Map<string, PgModel>> {
  const query = textQuery(client)
  const S = q(opts.syncSchema)
  await client.query('BEGIN')
  try {
    await client.query(`SELECT set_config('lock_timeout', $1, true)`, ['10s'])
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`meshmirror:${opts.syncSchema}`])
    const [present] = await query(`SELECT to_regclass($1) AS meta`, [`${S}.meta`])
    if (present?.meta === null) await client.query(syncDdl(opts.syncSchema))
    const [version] = await query(`SELECT value FROM ${S}.meta WHERE key = 'schema_version'`)
    if (version === undefined) {
      await client.query(`INSERT INTO ${S}.meta (key, value) VALUES ('schema_version', $1)`, [
        String(PG_SYNC_SCHEMA_VERSION),
      ])
    } else if (Number(version.value) !== PG_SYNC_SCHEMA_VERSION) {
      throw new StorageError(
        ErrorCode.DATABASE_UNUSABLE,
        `The schema ${opts.syncSchema} holds meshmirror tables of version ${version.value}; this meshmirror uses version ${PG_SYNC_SCHEMA_VERSION}. Use a matching meshmirror version.`,
        { details: { version: version.value } },
      )
    }
    let tables = await readPgTables(query, opts.schema)
    const creates: string[] = []
    for (const def of opts.models) {
      const r = resolveModel(def, tables, opts.schema)
      if (typeof r === 'string') creates.push(r)
    }
    if (creates.length > 0) {
      for (const sql of creates) await client.query(sql)
      tables = await readPgTables(query, opts.schema)
    }
    const models = new Map<string, PgModel>()
    for (const def of opts.models) {
      if (models.has(def.name)) {
        throw invalidModel(`Model ${def.name} is defined twice.`, { model: def.name })
      }
      models.set(def.name, resolveModel(def, tables, opts.schema) as PgModel)
    }
    // The functions follow the tables' columns; replacing one takes no lock on the table.
    for (const m of models.values()) {
      const [fn] = await query(`SELECT to_regprocedure($1) AS f`, [`${S}.${q(captureNames(m).fn)}()`])
      if (fn?.f !== null) await client.query(captureFunctionSql(m as CaptureModel, opts.syncSchema))
    }
    await client.query('COMMIT')
    return models
  } catch (error) {
    await client.query('ROLLBACK').catch(() => undefined)
    throw error
  }
}

/** Above this, one connection's failures in a row end the retries. */
const MAX_ATTEMPTS = 10_000

class PostgresRepositoryImpl implements PostgresRepository {
  readonly capturesChanges = true
  readonly schema: string
  readonly syncSchema: string
  private readonly mutex = new Mutex()
  private readonly numbering = new Mutex()
  private readonly st: PgStore
  private readonly plan: PgRelationPlan
  private readonly counters: RepositoryStats = { transactions: 0, busyRetries: 0 }
  private readonly busyListeners = new Set<(p: RepositoryEvents['busy']) => void>()
  private readonly closeController = new AbortController()
  private closing: Promise<void> | undefined
  private readonly lockTimeout: string

  constructor(
    readonly location: string,
    private readonly pool: pg.Pool,
    private readonly listener: OutboxListener,
    private readonly modelInfo: Map<string, PgModel>,
    private readonly opts: ReturnType<typeof checkOptions>,
  ) {
    this.schema = opts.schema
    this.syncSchema = opts.syncSchema
    this.st = new PgStore(opts.syncSchema)
    this.lockTimeout = `${Math.round(opts.lockTimeoutMs)}ms`
    const ordered = parentsFirst([...modelInfo.values()])
    const referencedBy = new Map<string, { ref: string; columns: string[] }[]>()
    for (const m of ordered) {
      for (const fk of m.foreignKeys) {
        const ref = parentRef(fk)
        const list = referencedBy.get(fk.table) ?? []
        if (!list.some((r) => r.ref === ref)) list.push({ ref, columns: fk.to })
        referencedBy.set(fk.table, list)
      }
    }
    this.plan = {
      models: new Map(ordered.map((m) => [m.name, m])),
      order: ordered.map((m) => m.name),
      referencedBy,
      byTable: new Map(ordered.map((m) => [m.table, m])),
    }
  }

  models(): string[] {
    return [...this.plan.order]
  }

  keyColumns(model: string): string[] {
    return [...this.model(model).keys]
  }

  rowId(model: string, row: Row): string {
    return rowId(this.model(model), row)
  }

  async isCapturing(model: string): Promise<boolean> {
    this.assertOpen()
    const m = this.model(model)
    const { rows } = await this.pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_trigger WHERE tgname = $1 AND tgrelid = $2::regclass`,
      [captureNames(m).trigger, m.qualified],
    )
    return Number(rows[0]!.n) === 1
  }

  async state(): Promise<PostgresRepositoryState> {
    this.assertOpen()
    const depth = await this.st.outboxDepth(this.pool)
    return {
      kind: 'postgres',
      pool: {
        size: this.opts.poolSize,
        total: this.pool.totalCount,
        idle: this.pool.idleCount,
        waiting: this.pool.waitingCount,
      },
      outbox: { depth: depth.count, oldestAt: depth.oldestAt },
      listening: this.listener.listening,
      listenReconnects: this.listener.reconnects,
    }
  }

  // ---- reads (committed data, on any pooled connection) ------------------------------

  async get(model: string, id: string): Promise<Row | undefined> {
    this.assertOpen()
    return (await this.st.getMany(this.pool, this.model(model), [id])).get(id)
  }

  async getMany(model: string, ids: readonly string[]): Promise<Map<string, Row>> {
    this.assertOpen()
    return this.st.getMany(this.pool, this.model(model), ids)
  }

  async scan(model: string, options: { after?: string | null; limit: number }): Promise<Row[]> {
    this.assertOpen()
    return this.st.scan(this.pool, this.model(model), options.after ?? null, checkLimit(options.limit), false)
  }

  async count(model: string): Promise<number> {
    this.assertOpen()
    return this.st.count(this.pool, this.model(model), false)
  }

  async unmirrored(model: string, options: { after?: string | null; limit: number }): Promise<Row[]> {
    this.assertOpen()
    return this.st.scan(this.pool, this.model(model), options.after ?? null, checkLimit(options.limit), true)
  }

  async countUnmirrored(model: string): Promise<number> {
    this.assertOpen()
    return this.st.count(this.pool, this.model(model), true)
  }

  async syncStates(
    model: string,
    ids: readonly string[],
    options: { documents?: boolean } = {},
  ): Promise<Map<string, DocSyncState>> {
    this.assertOpen()
    return this.st.syncStates(this.pool, this.model(model).name, ids, options.documents ?? true)
  }

  async allSyncStates(model: string, limit: number): Promise<Map<string, DocSyncState> | undefined> {
    this.assertOpen()
    return this.st.allSyncStates(this.pool, this.model(model).name, checkLimit(limit))
  }

  async syncStatePage(model: string, options: { after: string | null; limit: number }): Promise<DocSyncStateEntry[]> {
    this.assertOpen()
    return this.st.syncStatePage(this.pool, this.model(model).name, options.after, checkLimit(options.limit))
  }

  async checkpoint(key: string): Promise<string | undefined> {
    this.assertOpen()
    return this.st.checkpoint(this.pool, key)
  }

  async parked(options: { model?: string; state?: ParkedDocument['state']; limit: number }): Promise<ParkedDocument[]> {
    this.assertOpen()
    return this.st.parkedList(this.pool, { ...options, limit: checkLimit(options.limit) })
  }

  async parkedCounts(): Promise<{ parked: number; refused: number }> {
    this.assertOpen()
    return this.st.parkedCounts(this.pool)
  }

  async unblockedBy(model: string, rows: readonly Row[]): Promise<Map<string, string[]>> {
    this.assertOpen()
    const out = new Map<string, string[]>()
    await pgUnblockedBy(this.pool, this.st, this.plan, this.model(model), rows, out)
    return out
  }

  async pendingChanges(options: { models: readonly string[]; limit: number }): Promise<CapturedChange[]> {
    this.assertOpen()
    const limit = checkLimit(options.limit)
    const list = await this.numbering.run(async () => {
      await this.st.numberOutbox(this.pool)
      return this.st.pendingChanges(this.pool, options.models, limit)
    })
    return list.map((c) => {
      const m = this.modelInfo.get(c.model)
      return { ...c, old: m ? decodeOld(m, c.old) : null }
    })
  }

  async rowsAt(model: string, ids: readonly string[], seq: number): Promise<Map<string, Row>> {
    this.assertOpen()
    const m = this.model(model)
    const client = await this.pool.connect()
    try {
      // One snapshot: the rows and the later changes are of the same moment.
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY')
      const rows = await this.st.getMany(client, m, ids)
      for (const later of await this.st.firstChangesAfter(client, m, ids, seq)) {
        if (later.op === 'delete' && later.old === null) continue
        if (later.old === null) rows.delete(later.id)
        else rows.set(later.id, later.old)
      }
      await client.query('COMMIT')
      return rows
    } catch (error) {
      await client.query('ROLLBACK').catch(() => undefined)
      throw error
    } finally {
      client.release()
    }
  }

  async pendingChangeCount(models: readonly string[]): Promise<{ count: number; oldestAt: number | null }> {
    this.assertOpen()
    return this.st.pendingChangeCount(this.pool, models)
  }

  onChanges(listener: () => void): () => void {
    return this.listener.add(listener)
  }

  // ---- writes ----------------------------------------------------------------------

  upsert(model: string, rows: readonly Row[]): Promise<number> {
    return this.transaction((tx) => tx.upsert(model, rows))
  }

  delete(model: string, ids: readonly string[]): Promise<number> {
    return this.transaction((tx) => tx.delete(model, ids))
  }

  async setChangeCapture(model: string, enabled: boolean): Promise<void> {
    const m = this.model(model) as PgModel & CaptureModel
    const { trigger } = captureNames(m)
    await this.transaction(async () => {
      const db = this.current!
      const { rows } = await db.query<{ n: string }>(
        `SELECT count(*) AS n FROM pg_trigger WHERE tgname = $1 AND tgrelid = $2::regclass`,
        [trigger, m.qualified],
      )
      const installed = Number(rows[0]!.n) === 1
      if (enabled) {
        await db.query(captureFunctionSql(m, this.syncSchema))
        if (!installed) await db.query(captureTriggerSql(m, this.syncSchema))
      } else {
        if (installed) await db.query(`DROP TRIGGER ${q(trigger)} ON ${m.qualified}`)
        await db.query(`DELETE FROM ${q(this.syncSchema)}.outbox WHERE model = $1`, [m.name])
      }
    })
  }

  /** The client of the transaction running now (set only inside one). */
  private current: pg.PoolClient | undefined

  transaction<T>(fn: (tx: RepositoryTx) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
    if (this.closing) return Promise.reject(new ClosedError(`The repository ${this.location}`))
    const remote = options.origin === 'remote'
    return this.mutex.run(() =>
      this.withClient(options.signal, async (client) => {
        await this.begin(client, remote)
        let active = true
        this.current = client
        const tx = this.txFor(client, () => active)
        try {
          const result = await fn(tx)
          await client.query('COMMIT')
          this.counters.transactions++
          return result
        } catch (error) {
          await client.query('ROLLBACK').catch(() => undefined)
          throw error
        } finally {
          active = false
          this.current = undefined
        }
      }),
    )
  }

  applyRemoteBatch(batch: RemoteBatch, options: { signal?: AbortSignal } = {}): Promise<RemoteBatchResult> {
    if (this.closing) return Promise.reject(new ClosedError(`The repository ${this.location}`))
    return this.mutex.run(async () => {
      let isolate = false
      for (;;) {
        try {
          return await this.withClient(options.signal, async (client) => {
            await this.begin(client, true)
            try {
              const result = await runPgBatch(client, this.st, this.plan, batch, isolate)
              await client.query('COMMIT')
              this.counters.transactions++
              return result
            } catch (error) {
              await client.query('ROLLBACK').catch(() => undefined)
              throw error
            }
          })
        } catch (error) {
          // One record failed the batch: write record by record and refuse only the failing ones.
          const dataError = pgErrorCode(error) !== undefined || hasCode(error, ErrorCode.DOCUMENT_REJECTED)
          if (isolate || !dataError) throw error
          isolate = true
        }
      }
    })
  }

  /** Begins a transaction with its lock timeout and, for a remote apply, the setting the capture triggers skip. */
  private async begin(client: pg.PoolClient, remote: boolean): Promise<void> {
    // One round trip: the simple protocol runs both statements.
    await client.query(
      `BEGIN; SELECT set_config('lock_timeout', ${lit(this.lockTimeout)}, true), set_config(${lit(APPLYING_SETTING)}, '${remote ? 'on' : 'off'}', true)`,
    )
  }

  /**
   * Runs `fn` on a pooled connection; a serialization failure, a deadlock or
   * a lock held longer than lockTimeoutMs rolls it back and runs it again
   * after a backoff, for as long as it takes (or until `signal` or close).
   */
  private async withClient<T>(signal: AbortSignal | undefined, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      const client = await this.pool.connect()
      let failure: unknown
      try {
        const out = await fn(client)
        client.release()
        return out
      } catch (error) {
        failure = error
        // A connection that failed (rather than answered with an error) is dropped, not reused.
        client.release(isConnectionFailure(error) ? (error as Error) : undefined)
      }
      if (!isRetryable(failure) || attempt >= MAX_ATTEMPTS) throw failure
      const waitMs = Math.round(backoffMs(Math.min(attempt, 8), { initialMs: 5, maxMs: 500, jitter: true }))
      this.counters.busyRetries++
      for (const l of this.busyListeners) l({ attempt, waitMs, error: failure })
      await delay(waitMs, signal, this.closeController.signal)
    }
  }

  private txFor(client: pg.PoolClient, active: () => boolean): RepositoryTx {
    const guard = () => {
      if (!active()) {
        throw new MeshmirrorError(
          ErrorCode.INVALID_OPTIONS,
          'A repository transaction object was used after its transaction ended. Use it only inside the callback.',
        )
      }
    }
    const st = this.st
    return {
      get: async (name, id) => {
        guard()
        return (await st.getMany(client, this.model(name), [id])).get(id)
      },
      upsert: async (name, rows) => {
        guard()
        return st.upsert(client, this.model(name), rows)
      },
      delete: async (name, ids) => {
        guard()
        return st.delete(client, this.model(name), ids)
      },
      pendingIds: async (name, ids) => {
        guard()
        return st.pendingIds(client, name, ids)
      },
      putSyncStates: async (name, entries) => {
        guard()
        await st.putSyncStates(client, name, entries)
      },
      setCheckpoint: async (key, value) => {
        guard()
        await st.setCheckpoint(client, key, value)
      },
      clearSyncState: async () => {
        guard()
        await st.clearSyncState(client)
      },
      acknowledge: async (upTo, models) => {
        guard()
        return st.acknowledge(client, upTo, models)
      },
      park: async (name, entries) => {
        guard()
        await st.park(client, this.model(name).name, entries)
      },
      unpark: async (name, ids) => {
        guard()
        await st.unpark(client, this.model(name).name, ids)
      },
      savepoint: async (fn) => {
        guard()
        await client.query('SAVEPOINT meshmirror_item')
        try {
          const out = await fn()
          await client.query('RELEASE SAVEPOINT meshmirror_item')
          return out
        } catch (e) {
          await client.query('ROLLBACK TO SAVEPOINT meshmirror_item')
          await client.query('RELEASE SAVEPOINT meshmirror_item')
          throw e
        }
      },
    }
  }

  // ---- misc ------------------------------------------------------------------------

  stats(): RepositoryStats {
    return { ...this.counters }
  }

  on<E extends keyof RepositoryEvents>(event: E, listener: (payload: RepositoryEvents[E]) => void): () => void {
    // Postgres locks rows, not the database: no transaction holds every other writer back, so none is reported long.
    if (event === 'longTransaction') return () => undefined
    if (event !== 'busy') throw new ValidationError(ErrorCode.INVALID_OPTIONS, `Unknown event ${String(event)}.`)
    this.busyListeners.add(listener as (p: RepositoryEvents['busy']) => void)
    return () => this.busyListeners.delete(listener as (p: RepositoryEvents['busy']) => void)
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.mutex.run(() => undefined)
      this.closeController.abort(new ClosedError(`The repository ${this.location}`))
      await this.listener.stop()
      await this.pool.end().catch(() => undefined)
    })()
    return this.closing
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close()
  }

  private model(name: string): PgModel {
    const info = this.modelInfo.get(name)
    if (!info) throw unknownModel(name, this.location, this.models())
    return info
  }

  private assertOpen(): void {
    if (this.closing) throw new ClosedError(`The repository ${this.location}`)
  }
}

/**
 * The parked and refused documents kept in a Postgres database's sync
 * schema, read without opening the repository (nothing is written).
 */
export async function readPostgresParked(
  connectionString: string,
  options: { syncSchema?: string; state?: ParkedDocument['state']; limit: number },
): Promise<{ parked: number; refused: number; entries: ParkedDocument[] }> {
  const syncSchema = options.syncSchema ?? 'meshmirror'
  const pool = new pg.Pool({ ...pgConfig(connectionString), max: 1 })
  pool.on('error', () => undefined)
  try {
    const { rows } = await pool.query<{ t: string | null }>('SELECT to_regclass($1) AS t', [`${q(syncSchema)}.parked`])
    if (rows[0]?.t === null) return { parked: 0, refused: 0, entries: [] }
    const st = new PgStore(syncSchema)
    const counts = await st.parkedCounts(pool)
    const entries = await st.parkedList(pool, {
      ...(options.state ? { state: options.state } : {}),
      limit: checkLimit(options.limit),
    })
    return { ...counts, entries }
  } catch (cause) {
    if (cause instanceof MeshmirrorError) throw cause
    throw new StorageError(
      ErrorCode.DATABASE_UNUSABLE,
      `Cannot read ${redactUrl(connectionString)}: ${(cause as Error).message}`,
      { cause },
    )
  } finally {
    await pool.end().catch(() => undefined)
  }
}
