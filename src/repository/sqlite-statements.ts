import type Database from 'better-sqlite3'
import { ErrorCode, MeshmirrorError } from '../errors.js'
import { statementCache } from '../util/statement-cache.js'
import type { KeyMap } from './key-map.js'
import type { ColumnType, ModelInfo } from './model-definition.js'
import { quoteIdent } from './model-definition.js'
import type { CapturedChange, DocSyncState, DocSyncStateEntry, Row } from './repository.js'
import { DELETED_HASH } from './repository.js'
import { decodeRow, encodeValue, type SqlValue } from './row-codec.js'
import { idExpression, keyCondition, keyList, keyValues, rowId } from './row-key.js'

const IDS = 'SELECT value FROM json_each(?)'

/** Rows per multi-row statement. */
const MULTI = 16

interface UpsertPlan {
  stmt: Database.Statement
  types: ColumnType[]
  keyIndexes: number[]
  /** The statement writing MULTI rows at once, prepared on first use. */
  multi(): Database.Statement
}

/** Prepared statements on one connection, created on first use. */
export class ModelStatements {
  private readonly plans = new Map<string, UpsertPlan>()
  private readonly stmt: (sql: string) => Database.Statement

  constructor(
    private readonly db: Database.Database,
    /** Translates the keys of `local` models (document ids ↔ this database's keys). */
    readonly keys: KeyMap,
  ) {
    this.stmt = statementCache(db)
  }

  /** A row read from the table, as adapters see it (`local` keys as document ids). */
  private read(m: ModelInfo, raw: Record<string, unknown>): Row {
    const row = decodeRow(m, raw)
    return m.localRefs.size === 0 ? row : this.keys.toMesh(m, row)
  }

  /** The stored key values of a document id, or undefined when this database holds no such row. */
  private stored(m: ModelInfo, id: string): unknown[] | undefined {
    const values = keyValues(m, id)
    return m.localRefs.size === 0 ? values : this.keys.storageKey(m, values)
  }

  /** A statement reading app rows: INTEGER as bigint, so it is told from REAL and kept exact. */
  private rowStmt(sql: string): Database.Statement {
    return this.stmt(sql).safeIntegers(true)
  }

  /**
   * The distinct values of `cols` held in `table` among `keys` (tuples of as
   * many values), in lookups of at most `per` keys. A lookup's key count is
   * rounded up to a power of two (the first key repeated), so a handful of
   * prepared statements serve every batch.
   */
  referencing(table: string, cols: readonly string[], keys: readonly unknown[][], per: number): unknown[][] {
    const quoted = cols.map(quoteIdent)
    const target = quoted.length === 1 ? quoted[0]! : `(${quoted.join(', ')})`
    const tuple = `(${quoted.map(() => '?').join(', ')})`
    const out: unknown[][] = []
    for (let i = 0; i < keys.length; i += per) {
      const part = keys.slice(i, i + per)
      let size = 1
      while (size < part.length) size *= 2
      size = Math.min(size, per)
      while (part.length < size) part.push(part[0]!)
      const sql = `SELECT DISTINCT ${quoted.join(', ')} FROM ${quoteIdent(table)} WHERE ${target} IN (VALUES ${Array.from({ length: size }, () => tuple).join(', ')})`
      out.push(
        ...(this.stmt(sql)
          .raw()
          .all(...part.flat()) as unknown[][]),
      )
    }
    return out
  }

  // ---- rows ----------------------------------------------------------------------

  get(m: ModelInfo, id: string): Row | undefined {
    const key = this.stored(m, id)
    if (key === undefined) return undefined
    const raw = this.rowStmt(`SELECT * FROM ${quoteIdent(m.table)} WHERE ${keyCondition(m)}`).get(key) as
      | Record<string, unknown>
      | undefined
    return raw ? this.read(m, raw) : undefined
  }

  getMany(m: ModelInfo, ids: readonly string[]): Map<string, Row> {
    const out = new Map<string, Row>()
    if (ids.length === 0) return out
    if (m.localRefs.size > 0) {
      for (const id of ids) {
        const row = this.get(m, id)
        if (row) out.set(id, row)
      }
      return out
    }
    // A composite key is matched column by column, so the lookup uses the key's index.
    const sql =
      m.keys.length === 1
        ? `SELECT * FROM ${quoteIdent(m.table)} WHERE ${quoteIdent(m.keys[0]!)} IN (${IDS})`
        : `SELECT t.* FROM json_each(?) AS j JOIN ${quoteIdent(m.table)} AS t ON ${m.keys
            .map((k, i) => `t.${quoteIdent(k)} = json_extract(j.value, '$[${i}]')`)
            .join(' AND ')}`
    const rows = this.rowStmt(sql).all(
      JSON.stringify(m.keys.length === 1 ? ids : ids.map((id) => keyValues(m, id))),
    ) as Record<string, unknown>[]
    for (const raw of rows) out.set(rowId(m, raw), decodeRow(m, raw))
    return out
  }

  scan(m: ModelInfo, after: string | null, limit: number, unmirroredOnly: boolean): Row[] {
    const where: string[] = []
    const params: unknown[] = []
    const position = after === null ? null : this.position(m, after)
    if (position !== null) {
      where.push(
        m.keys.length === 1
          ? `t.${quoteIdent(m.keys[0]!)} > ?`
          : `(${keyList(m, 't')}) > (${m.keys.map(() => '?').join(', ')})`,
      )
      params.push(...position)
    }
    if (unmirroredOnly) where.push(unmirroredCondition(m, this.keys.device))
    const sql = `SELECT t.* FROM ${quoteIdent(m.table)} AS t ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY ${keyList(m, 't')} LIMIT ?`
    params.push(limit)
    return (this.rowStmt(sql).all(...params) as Record<string, unknown>[]).map((raw) => this.read(m, raw))
  }

  /** Where a page after the row `after` starts, in stored key values (null: from the start). */
  private position(m: ModelInfo, after: string): unknown[] | null {
    const values = keyValues(m, after)
    if (m.localRefs.size === 0) return values
    const out: unknown[] = []
    for (let i = 0; i < m.keys.length; i++) {
      const ref = m.localRefs.get(m.keys[i]!)
      const v = values[i]!
      if (ref === undefined) out.push(v)
      else {
        const key = typeof v === 'string' ? this.keys.position(ref, v) : undefined
        // A row this database never held: start again (paging is idempotent).
        if (key === undefined) return null
        out.push(key)
      }
    }
    return out
  }

  count(m: ModelInfo, unmirroredOnly: boolean): number {
    const sql = `SELECT count(*) FROM ${quoteIdent(m.table)} AS t${unmirroredOnly ? ` WHERE ${unmirroredCondition(m, this.keys.device)}` : ''}`
    return this.stmt(sql).pluck().get() as number
  }

  upsert(m: ModelInfo, given: readonly Row[]): number {
    const rows = m.localRefs.size === 0 ? given : given.map((row) => this.toStorage(m, row))
    let changed = 0
    let signature = ''
    let plan: UpsertPlan | undefined
    // Rows of the same shape go in multi-row statements: far fewer statement runs.
    let pending: SqlValue[] = []
    let pendingRows = 0
    const flush = () => {
      if (!plan || pendingRows === 0) return
      const stmt = pendingRows === MULTI ? plan.multi() : undefined
      if (stmt) changed += stmt.run(pending).changes
      else {
        const width = plan.types.length
        for (let r = 0; r < pendingRows; r++)
          changed += plan.stmt.run(pending.slice(r * width, (r + 1) * width)).changes
      }
      pending = []
      pendingRows = 0
    }
    for (const row of rows) {
      let columns = Object.keys(row)
      if (columns.some((c) => row[c] === undefined)) columns = columns.filter((c) => row[c] !== undefined)
      const sig = columns.join('\u0000')
      if (plan === undefined || sig !== signature) {
        flush()
        plan = this.upsertPlan(m, columns, sig)
        signature = sig
      }
      const base = pending.length
      for (let i = 0; i < columns.length; i++) {
        const v = row[columns[i]!]
        pending.push(
          typeof v === 'string' || (typeof v === 'number' && plan.types[i] !== 'any')
            ? v
            : encodeValue(v, plan.types[i]!, m.name, columns[i]!),
        )
      }
      for (const k of plan.keyIndexes) if (pending[base + k] === null) rowId(m, row)
      if (++pendingRows === MULTI) flush()
    }
    flush()
    return changed
  }

  private upsertPlan(m: ModelInfo, columns: readonly string[], signature: string): UpsertPlan {
    const cacheKey = `upsert\u0000${m.name}\u0000${signature}`
    const cached = this.plans.get(cacheKey)
    if (cached) return cached
    const unknown = columns.filter((c) => !m.columns.has(c))
    if (unknown.length > 0) {
      throw new MeshmirrorError(
        ErrorCode.INVALID_MODEL,
        `Model ${m.name} (table ${m.table}) has no column(s) ${unknown.join(', ')}; the record does not fit the table.`,
        { details: { model: m.name, columns: unknown } },
      )
    }
    const keyIndexes = m.keys.map((k) => columns.indexOf(k))
    if (keyIndexes.includes(-1)) {
      const missing = m.keys.filter((k) => !columns.includes(k))
      throw new MeshmirrorError(
        ErrorCode.INVALID_MODEL,
        `A ${m.name} record has no ${missing.join(', ')} (of its primary key); it cannot be stored.`,
        { details: { model: m.name } },
      )
    }
    const t = quoteIdent(m.table)
    const cols = columns.map(quoteIdent)
    const rest = columns.filter((c) => !m.keys.includes(c)).map(quoteIdent)
    // In a column without a type, INTEGER 2 and REAL 2.0 are equal yet differ: compare the class too.
    const loose = new Set(columns.filter((c) => m.columns.get(c) === 'any').map(quoteIdent))
    // Unchanged rows are left alone: no write, no trigger, no change counted.
    const conflict =
      rest.length === 0
        ? 'DO NOTHING'
        : `DO UPDATE SET ${rest.map((c) => `${c} = excluded.${c}`).join(', ')} WHERE ${rest
            .map(
              (c) =>
                `${t}.${c} IS NOT excluded.${c}${loose.has(c) ? ` OR typeof(${t}.${c}) <> typeof(excluded.${c})` : ''}`,
            )
            .join(' OR ')}`
    const stmt = this.db.prepare(
      `INSERT INTO ${t} (${cols.join(', ')}) VALUES (${cols.map(() => '?').join(', ')}) ON CONFLICT (${keyList(m)}) ${conflict}`,
    )
    let multi: Database.Statement | undefined
    const plan: UpsertPlan = {
      stmt,
      types: columns.map((c) => m.columns.get(c)!),
      keyIndexes,
      multi: () => {
        multi ??= this.db.prepare(
          `INSERT INTO ${t} (${cols.join(', ')}) VALUES ${Array.from({ length: MULTI }, () => `(${cols.map(() => '?').join(', ')})`).join(', ')} ON CONFLICT (${keyList(m)}) ${conflict}`,
        )
        return multi
      },
    }
    this.plans.set(cacheKey, plan)
    return plan
  }

  /** A row to write, in stored form: a `local` row's key claimed (allocated when new), references translated. */
  private toStorage(m: ModelInfo, row: Row): Row {
    const own = m.keyMode === 'local' ? m.keys[0]! : undefined
    const id = own === undefined ? undefined : row[own]
    if (own !== undefined && typeof id === 'string') this.keys.claim(m, id)
    return this.keys.toStorage(m, row)
  }

  delete(m: ModelInfo, ids: readonly string[]): number {
    const stmt = this.stmt(`DELETE FROM ${quoteIdent(m.table)} WHERE ${keyCondition(m)}`)
    let n = 0
    for (const id of ids) {
      const key = this.stored(m, id)
      if (key !== undefined) n += stmt.run(key).changes
    }
    return n
  }

  // ---- loop-prevention flag ---------------------------------------------------------

  setFlag(): void {
    this.stmt('INSERT INTO _meshmirror_applying (flag) VALUES (1)').run()
  }

  clearFlag(): void {
    this.stmt('DELETE FROM _meshmirror_applying').run()
  }

  // ---- outbox ------------------------------------------------------------------------

  pendingIds(model: string, ids: readonly string[]): Set<string> {
    const out = new Set<string>()
    if (ids.length === 0 || this.stmt('SELECT EXISTS (SELECT 1 FROM _meshmirror_outbox)').pluck().get() === 0) {
      return out
    }
    const rows = this.stmt(`SELECT DISTINCT row_id FROM _meshmirror_outbox WHERE model = ? AND row_id IN (${IDS})`)
      .pluck()
      .all(model, JSON.stringify(ids)) as string[]
    for (const id of rows) out.add(id)
    return out
  }

  /** Captured changes, `old` still as JSON text. */
  pendingChanges(models: readonly string[], limit: number): (Omit<CapturedChange, 'old'> & { old: string | null })[] {
    if (models.length === 0) return []
    return this.stmt(
      // `+model`: walk the outbox in seq order instead of sorting all of a model's entries.
      `SELECT seq, model, row_id AS id, op, at, old FROM _meshmirror_outbox WHERE +model IN (${IDS}) ORDER BY seq LIMIT ?`,
    ).all(JSON.stringify(models), limit) as (Omit<CapturedChange, 'old'> & { old: string | null })[]
  }

  /**
   * For each of `ids` with a captured change after `seq`, the first such
   * change (`old` still as JSON text): the row before it is the row as of `seq`.
   */
  firstChangesAfter(
    model: string,
    ids: readonly string[],
    seq: number,
  ): (Pick<CapturedChange, 'id' | 'op'> & { old: string | null })[] {
    if (ids.length === 0) return []
    return this.stmt(
      `SELECT o.row_id AS id, o.op, o.old FROM json_each(?) AS j JOIN _meshmirror_outbox AS o ON o.seq = (SELECT min(seq) FROM _meshmirror_outbox WHERE model = ? AND row_id = j.value AND seq > ?)`,
    ).all(JSON.stringify(ids), model, seq) as (Pick<CapturedChange, 'id' | 'op'> & { old: string | null })[]
  }

  pendingChangeCount(models: readonly string[]): { count: number; oldestAt: number | null } {
    return this.stmt(
      `SELECT count(*) AS count, min(at) AS oldestAt FROM _meshmirror_outbox WHERE model IN (${IDS})`,
    ).get(JSON.stringify(models)) as { count: number; oldestAt: number | null }
  }

  maxOutboxSeq(): number {
    return this.stmt('SELECT coalesce(max(seq), 0) FROM _meshmirror_outbox').pluck().get() as number
  }

  acknowledge(upTo: number, models: readonly string[]): number {
    return this.stmt(`DELETE FROM _meshmirror_outbox WHERE seq <= ? AND +model IN (${IDS})`).run(
      upTo,
      JSON.stringify(models),
    ).changes
  }

  // ---- sync state ----------------------------------------------------------------------

  syncStates(model: string, ids: readonly string[], documents: boolean): Map<string, DocSyncState> {
    const out = new Map<string, DocSyncState>()
    if (ids.length === 0) return out
    const rows = this.stmt(
      `SELECT id, hash, origin, ${documents ? 'doc' : 'NULL'} FROM _meshmirror_sync_state WHERE model = ? AND id IN (${IDS})`,
    )
      .raw()
      .all(model, JSON.stringify(ids)) as [string, string, 'local' | 'remote', string | null][]
    for (const [id, hash, origin, doc] of rows) out.set(id, { hash, origin, doc })
    return out
  }

  allSyncStates(model: string, limit: number): Map<string, DocSyncState> | undefined {
    const n = this.stmt('SELECT count(*) FROM _meshmirror_sync_state WHERE model = ?').pluck().get(model) as number
    if (n > limit) return undefined
    const out = new Map<string, DocSyncState>()
    const rows = this.stmt('SELECT id, hash, origin FROM _meshmirror_sync_state WHERE model = ?').raw().all(model) as [
      string,
      string,
      'local' | 'remote',
    ][]
    for (const [id, hash, origin] of rows) out.set(id, { hash, origin, doc: null })
    return out
  }

  syncStatePage(model: string, after: string | null, limit: number): DocSyncStateEntry[] {
    const rows = (
      after === null
        ? this.stmt('SELECT id, hash, origin FROM _meshmirror_sync_state WHERE model = ? ORDER BY id LIMIT ?')
            .raw()
            .all(model, limit)
        : this.stmt(
            'SELECT id, hash, origin FROM _meshmirror_sync_state WHERE model = ? AND id > ? ORDER BY id LIMIT ?',
          )
            .raw()
            .all(model, after, limit)
    ) as [string, string, 'local' | 'remote'][]
    return rows.map(([id, hash, origin]) => ({ id, hash, origin, doc: null }))
  }

  putSyncStates(model: string, entries: readonly DocSyncStateEntry[]): void {
    const head = 'INSERT INTO _meshmirror_sync_state (model, id, hash, origin, doc, updated_at) VALUES '
    const tail =
      ' ON CONFLICT (model, id) DO UPDATE SET hash = excluded.hash, origin = excluded.origin, doc = excluded.doc, updated_at = excluded.updated_at'
    const one = this.stmt(`${head}(?, ?, ?, ?, ?, ?)${tail}`)
    const many = this.stmt(`${head}${Array.from({ length: MULTI }, () => '(?, ?, ?, ?, ?, ?)').join(', ')}${tail}`)
    const now = Date.now()
    let i = 0
    for (; i + MULTI <= entries.length; i += MULTI) {
      const values: unknown[] = []
      for (let j = i; j < i + MULTI; j++) {
        const e = entries[j]!
        values.push(model, e.id, e.hash, e.origin, e.doc, now)
      }
      many.run(values)
    }
    for (; i < entries.length; i++) {
      const e = entries[i]!
      one.run(model, e.id, e.hash, e.origin, e.doc, now)
    }
  }

  checkpoint(key: string): string | undefined {
    return this.stmt('SELECT value FROM _meshmirror_checkpoints WHERE key = ?').pluck().get(key) as string | undefined
  }

  setCheckpoint(key: string, value: string | null): void {
    if (value === null) {
      this.stmt('DELETE FROM _meshmirror_checkpoints WHERE key = ?').run(key)
      return
    }
    this.stmt(
      'INSERT INTO _meshmirror_checkpoints (key, value, updated_at) VALUES (?, ?, ?) ' +
        'ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at',
    ).run(key, value, Date.now())
  }
}

/** Rows never exchanged with the mesh, or re-created after a recorded removal. */
function unmirroredCondition(m: ModelInfo, device: string): string {
  return `NOT EXISTS (SELECT 1 FROM _meshmirror_sync_state AS s WHERE s.model = '${m.name}' AND s.id = CAST(${idExpression(m, 't', device)} AS TEXT) AND s.hash <> '${DELETED_HASH}')`
}
