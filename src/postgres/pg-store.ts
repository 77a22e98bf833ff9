import type pg from 'pg'
import type {
  CapturedChange,
  DocSyncState,
  DocSyncStateEntry,
  ParkEntry,
  ParkedDocument,
  Row,
} from '../repository/repository.js'
import { rowId } from '../repository/row-key.js'
import { q } from './pg-capture.js'
import {
  decodeOld,
  decodeRow,
  idOf,
  keyList,
  keysAfter,
  keysIn,
  type PgModel,
  pushRow,
  rowColumns,
  upsertSql,
} from './pg-model.js'

/** Anything that runs a query: the pool (reads) or one client (a transaction). */
export type Queryable = Pick<pg.Pool, 'query'> | Pick<pg.PoolClient, 'query'>

type TextRow = Record<string, string | null>

async function rows(db: Queryable, sql: string, params: unknown[] = []): Promise<TextRow[]> {
  return (await db.query<TextRow>(sql, params)).rows
}

/** Rows per statement of a bulk write. */
const CHUNK = 10_000

/**
 * The statements of a Postgres repository, on whatever connection they are
 * given: rows of the app's tables, and meshmirror's own tables in the sync
 * schema.
 */
export class PgStore {
  private readonly S: string

  constructor(syncSchema: string) {
    this.S = q(syncSchema)
  }

  // ---- rows ----------------------------------------------------------------------

  async getMany(db: Queryable, m: PgModel, ids: readonly string[]): Promise<Map<string, Row>> {
    const out = new Map<string, Row>()
    if (ids.length === 0) return out
    const params: unknown[] = []
    const where = keysIn(m, ids, params)
    for (const raw of await rows(db, `SELECT ${m.selectList} FROM ${m.qualified} WHERE ${where}`, params)) {
      const row = decodeRow(m, raw)
      out.set(rowId(m, row), row)
    }
    return out
  }

  async scan(db: Queryable, m: PgModel, after: string | null, limit: number, unmirrored: boolean): Promise<Row[]> {
    const params: unknown[] = []
    const where: string[] = []
    if (unmirrored) {
      params.push(m.name)
      where.push(`NOT EXISTS (SELECT 1 FROM ${this.S}.sync_state s WHERE s.model = $1 AND s.id = ${idOf(m, 't')})`)
    }
    if (after !== null) where.push(keysAfter(m, after, params, 't'))
    params.push(limit)
    const sql = `SELECT ${m.selectList} FROM ${m.qualified} AS t ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY ${keyList(m, 't')} LIMIT $${params.length}`
    return (await rows(db, sql, params)).map((r) => decodeRow(m, r))
  }

  async count(db: Queryable, m: PgModel, unmirrored: boolean): Promise<number> {
    const sql = unmirrored
      ? `SELECT count(*) AS n FROM ${m.qualified} AS t WHERE NOT EXISTS (SELECT 1 FROM ${this.S}.sync_state s WHERE s.model = $1 AND s.id = ${idOf(m, 't')})`
      : `SELECT count(*) AS n FROM ${m.qualified}`
    return Number((await rows(db, sql, unmirrored ? [m.name] : []))[0]!.n)
  }

  /**
   * Writes received rows and their sync state in one statement (a remote
   * batch's bulk write: one round trip, one plan). Rows holding different
   * columns, or more than one chunk, go the ordinary way.
   */
  async upsertWithStates(
    db: Queryable,
    m: PgModel,
    input: readonly Row[],
    states: readonly { id: string; hash: string; doc: string | null }[],
  ): Promise<number> {
    const columns = input.length > 0 ? rowColumns(m, input[0]!) : []
    const same = input.every((r) => {
      const keys = Object.keys(r)
      return keys.length === columns.length && columns.every((c, i) => keys[i] === c.name)
    })
    const ids = new Set<string>()
    for (const st of states) ids.add(st.id)
    if (!same || input.length > CHUNK || input.length === 0 || ids.size !== states.length) {
      const n = await this.upsert(db, m, input)
      await this.putSyncStates(
        db,
        m.name,
        states.map((e) => ({ ...e, origin: 'remote' as const })),
      )
      return n
    }
    const arrays = columns.map(() => [] as (string | null)[])
    for (const row of input) pushRow(m, columns, row, arrays)
    const k = arrays.length
    const sql = `WITH w AS (${upsertSql(m, columns)} RETURNING 1),
      s AS (INSERT INTO ${this.S}.sync_state (model, id, hash, origin, doc, updated_at)
        SELECT $${k + 1}, u.id, u.hash, 'remote', u.doc, $${k + 5} FROM unnest($${k + 2}::text[], $${k + 3}::text[], $${k + 4}::text[]) AS u(id, hash, doc)
        ON CONFLICT (model, id) DO UPDATE SET hash = EXCLUDED.hash, origin = EXCLUDED.origin, doc = EXCLUDED.doc, updated_at = EXCLUDED.updated_at)
      SELECT count(*) AS n FROM w`
    const params = [
      ...arrays,
      m.name,
      states.map((e) => e.id),
      states.map((e) => e.hash),
      states.map((e) => e.doc),
      Date.now(),
    ]
    return Number((await rows(db, sql, params))[0]!.n)
  }

  /** Writes rows (grouped by the columns they hold; the last of one id wins). Returns how many changed. */
  async upsert(db: Queryable, m: PgModel, input: readonly Row[]): Promise<number> {
    const groups = new Map<string, { columns: ReturnType<typeof rowColumns>; rows: Map<string, Row> }>()
    for (const row of input) {
      const columns = rowColumns(m, row)
      const key = columns.map((c) => c.name).join('\u0000')
      let g = groups.get(key)
      if (!g) {
        g = { columns, rows: new Map() }
        groups.set(key, g)
      }
      const id = rowId(m, row)
      g.rows.delete(id)
      g.rows.set(id, row)
    }
    let changed = 0
    for (const g of groups.values()) {
      const sql = upsertSql(m, g.columns)
      const list = [...g.rows.values()]
      for (let i = 0; i < list.length; i += CHUNK) {
        const arrays = g.columns.map(() => [] as (string | null)[])
        for (const row of list.slice(i, i + CHUNK)) pushRow(m, g.columns, row, arrays)
        changed += (await db.query(sql, arrays)).rowCount ?? 0
      }
    }
    return changed
  }

  async delete(db: Queryable, m: PgModel, ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return 0
    let n = 0
    for (let i = 0; i < ids.length; i += CHUNK) {
      const params: unknown[] = []
      const where = keysIn(m, ids.slice(i, i + CHUNK), params)
      n += (await db.query(`DELETE FROM ${m.qualified} WHERE ${where}`, params)).rowCount ?? 0
    }
    return n
  }

  // ---- outbox --------------------------------------------------------------------

  /**
   * Numbers the outbox entries not read before, in the order they were
   * captured: an entry whose transaction commits after a read gets a
   * number above every entry that read returned.
   */
  async numberOutbox(db: Queryable): Promise<void> {
    await db.query(
      `UPDATE ${this.S}.outbox o SET seq = n.seq FROM (
         SELECT id, nextval('${this.S}.outbox_seq') AS seq FROM (SELECT id FROM ${this.S}.outbox WHERE seq IS NULL ORDER BY id) u
       ) n WHERE o.id = n.id`,
    )
  }

  async pendingChanges(
    db: Queryable,
    models: readonly string[],
    limit: number,
  ): Promise<(Omit<CapturedChange, 'old'> & { old: string | null })[]> {
    const list = await rows(
      db,
      `SELECT seq, model, row_id, op, at, old::text AS old FROM ${this.S}.outbox WHERE seq IS NOT NULL AND model = ANY($1::text[]) ORDER BY seq LIMIT $2`,
      [models, limit],
    )
    return list.map((r) => ({
      seq: Number(r.seq),
      model: r.model!,
      id: r.row_id!,
      op: r.op as CapturedChange['op'],
      at: Number(r.at),
      old: r.old ?? null,
    }))
  }

  /** Per id, the first change captured after `seq` (or not yet numbered). */
  async firstChangesAfter(
    db: Queryable,
    m: PgModel,
    ids: readonly string[],
    seq: number,
  ): Promise<{ id: string; op: string; old: Row | null }[]> {
    if (ids.length === 0) return []
    const list = await rows(
      db,
      `SELECT DISTINCT ON (row_id) row_id, op, old::text AS old FROM ${this.S}.outbox
        WHERE model = $1 AND row_id = ANY($2::text[]) AND (seq > $3 OR seq IS NULL) ORDER BY row_id, id`,
      [m.name, ids, seq],
    )
    return list.map((r) => ({ id: r.row_id!, op: r.op!, old: decodeOld(m, r.old) }))
  }

  async pendingIds(db: Queryable, model: string, ids: readonly string[]): Promise<Set<string>> {
    if (ids.length === 0) return new Set()
    const list = await rows(
      db,
      `SELECT DISTINCT row_id FROM ${this.S}.outbox WHERE model = $1 AND row_id = ANY($2::text[])`,
      [model, ids],
    )
    return new Set(list.map((r) => r.row_id!))
  }

  async pendingChangeCount(
    db: Queryable,
    models: readonly string[],
  ): Promise<{ count: number; oldestAt: number | null }> {
    const [r] = await rows(
      db,
      `SELECT count(*) AS n, min(at) AS oldest FROM ${this.S}.outbox WHERE model = ANY($1::text[])`,
      [models],
    )
    return { count: Number(r!.n), oldestAt: r!.oldest === null ? null : Number(r!.oldest) }
  }

  async outboxDepth(db: Queryable): Promise<{ count: number; oldestAt: number | null }> {
    const [r] = await rows(db, `SELECT count(*) AS n, min(at) AS oldest FROM ${this.S}.outbox`)
    return { count: Number(r!.n), oldestAt: r!.oldest === null ? null : Number(r!.oldest) }
  }

  async acknowledge(db: Queryable, upTo: number, models: readonly string[]): Promise<number> {
    return (
      (await db.query(`DELETE FROM ${this.S}.outbox WHERE seq <= $1 AND model = ANY($2::text[])`, [upTo, models]))
        .rowCount ?? 0
    )
  }

  // ---- sync state ----------------------------------------------------------------

  async syncStates(
    db: Queryable,
    model: string,
    ids: readonly string[],
    documents: boolean,
  ): Promise<Map<string, DocSyncState>> {
    const out = new Map<string, DocSyncState>()
    if (ids.length === 0) return out
    const list = await rows(
      db,
      `SELECT id, hash, origin, ${documents ? 'doc' : 'NULL AS doc'} FROM ${this.S}.sync_state WHERE model = $1 AND id = ANY($2::text[])`,
      [model, ids],
    )
    for (const r of list)
      out.set(r.id!, { hash: r.hash!, origin: r.origin as DocSyncState['origin'], doc: r.doc ?? null })
    return out
  }

  async allSyncStates(db: Queryable, model: string, limit: number): Promise<Map<string, DocSyncState> | undefined> {
    const list = await rows(db, `SELECT id, hash, origin FROM ${this.S}.sync_state WHERE model = $1 LIMIT $2`, [
      model,
      limit + 1,
    ])
    if (list.length > limit) return undefined
    return new Map(list.map((r) => [r.id!, { hash: r.hash!, origin: r.origin as DocSyncState['origin'], doc: null }]))
  }

  /** Pages in the primary key's order (its own collation), so each page is a range of the index. */
  async syncStatePage(db: Queryable, model: string, after: string | null, limit: number): Promise<DocSyncStateEntry[]> {
    const list =
      after === null
        ? await rows(db, `SELECT id, hash, origin FROM ${this.S}.sync_state WHERE model = $1 ORDER BY id LIMIT $2`, [
            model,
            limit,
          ])
        : await rows(
            db,
            `SELECT id, hash, origin FROM ${this.S}.sync_state WHERE model = $1 AND id > $2 ORDER BY id LIMIT $3`,
            [model, after, limit],
          )
    return list.map((r) => ({ id: r.id!, hash: r.hash!, origin: r.origin as DocSyncState['origin'], doc: null }))
  }

  async putSyncStates(db: Queryable, model: string, entries: readonly DocSyncStateEntry[]): Promise<void> {
    if (entries.length === 0) return
    const byId = new Map(entries.map((e) => [e.id, e]))
    const list = [...byId.values()]
    for (let i = 0; i < list.length; i += CHUNK) {
      const part = list.slice(i, i + CHUNK)
      await db.query(
        `INSERT INTO ${this.S}.sync_state (model, id, hash, origin, doc, updated_at)
         SELECT $1, u.id, u.hash, u.origin, u.doc, $6 FROM unnest($2::text[], $3::text[], $4::text[], $5::text[]) AS u(id, hash, origin, doc)
         ON CONFLICT (model, id) DO UPDATE SET hash = EXCLUDED.hash, origin = EXCLUDED.origin, doc = EXCLUDED.doc, updated_at = EXCLUDED.updated_at`,
        [
          model,
          part.map((e) => e.id),
          part.map((e) => e.hash),
          part.map((e) => e.origin),
          part.map((e) => e.doc),
          Date.now(),
        ],
      )
    }
  }

  async checkpoint(db: Queryable, key: string): Promise<string | undefined> {
    const [r] = await rows(db, `SELECT value FROM ${this.S}.checkpoints WHERE key = $1`, [key])
    return r?.value ?? undefined
  }

  async setCheckpoint(db: Queryable, key: string, value: string | null): Promise<void> {
    if (value === null) {
      await db.query(`DELETE FROM ${this.S}.checkpoints WHERE key = $1`, [key])
      return
    }
    await db.query(
      `INSERT INTO ${this.S}.checkpoints (key, value, updated_at) VALUES ($1, $2, $3)
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at`,
      [key, value, Date.now()],
    )
  }

  async clearSyncState(db: Queryable): Promise<void> {
    await db.query(`DELETE FROM ${this.S}.sync_state`)
    await db.query(`DELETE FROM ${this.S}.checkpoints`)
  }

  // ---- parked --------------------------------------------------------------------

  /**
   * False once a look found nothing kept, until something is parked: every
   * write of the parked table goes through this store (one mirror per sync
   * schema), so most batches need no query to know there is nothing to unblock.
   */
  private maybeParked = true

  async anyParked(db: Queryable, state?: 'parked'): Promise<boolean> {
    if (!this.maybeParked) return false
    const sql =
      state === undefined
        ? `SELECT EXISTS (SELECT 1 FROM ${this.S}.parked) AS e`
        : `SELECT EXISTS (SELECT 1 FROM ${this.S}.parked WHERE state = 'parked') AS e`
    const any = (await rows(db, sql))[0]!.e === 't'
    if (state === undefined && !any) this.maybeParked = false
    return any
  }

  async park(db: Queryable, model: string, entries: readonly ParkEntry[]): Promise<void> {
    if (entries.length === 0) return
    this.maybeParked = true
    const byId = new Map(entries.map((e) => [e.id, e]))
    const list = [...byId.values()]
    const now = Date.now()
    await db.query(
      `INSERT INTO ${this.S}.parked (model, id, state, op, reason, code, waits_for, waits_key, attempts, since, updated_at)
       SELECT $1, u.*, 1, $9, $9 FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
         AS u(id, state, op, reason, code, waits_for, waits_key)
       ON CONFLICT (model, id) DO UPDATE SET state = EXCLUDED.state, op = EXCLUDED.op, reason = EXCLUDED.reason,
         code = EXCLUDED.code, waits_for = EXCLUDED.waits_for, waits_key = EXCLUDED.waits_key,
         attempts = ${this.S}.parked.attempts + 1, updated_at = EXCLUDED.updated_at`,
      [
        model,
        list.map((e) => e.id),
        list.map((e) => e.state),
        list.map((e) => e.op),
        list.map((e) => e.reason),
        list.map((e) => e.code ?? null),
        list.map((e) => e.waitsFor ?? null),
        list.map((e) => e.waitsKey ?? null),
        now,
      ],
    )
  }

  async unpark(db: Queryable, model: string, ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return
    await db.query(`DELETE FROM ${this.S}.parked WHERE model = $1 AND id = ANY($2::text[])`, [model, ids])
  }

  async waitingFor(db: Queryable, ref: string, keys: readonly string[]): Promise<{ model: string; id: string }[]> {
    if (keys.length === 0) return []
    const list = await rows(
      db,
      `SELECT model, id FROM ${this.S}.parked WHERE waits_for = $1 AND waits_key = ANY($2::text[])`,
      [ref, keys],
    )
    return list.map((r) => ({ model: r.model!, id: r.id! }))
  }

  async parkedRemovals(db: Queryable): Promise<{ model: string; id: string }[]> {
    const list = await rows(
      db,
      `SELECT model, id FROM ${this.S}.parked WHERE state = 'parked' AND op = 'delete' LIMIT 1000`,
    )
    return list.map((r) => ({ model: r.model!, id: r.id! }))
  }

  async parkedList(
    db: Queryable,
    options: { model?: string; state?: 'parked' | 'refused'; limit: number },
  ): Promise<ParkedDocument[]> {
    const where: string[] = []
    const params: unknown[] = []
    if (options.model !== undefined) {
      params.push(options.model)
      where.push(`model = $${params.length}`)
    }
    if (options.state !== undefined) {
      params.push(options.state)
      where.push(`state = $${params.length}`)
    }
    params.push(options.limit)
    const list = await rows(
      db,
      `SELECT * FROM ${this.S}.parked ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY since, model, id LIMIT $${params.length}`,
      params,
    )
    return list.map((r) => ({
      model: r.model!,
      id: r.id!,
      state: r.state as ParkedDocument['state'],
      op: r.op as ParkedDocument['op'],
      reason: r.reason!,
      code: r.code ?? null,
      waitsFor: r.waits_for ?? null,
      waitsKey: r.waits_key ?? null,
      attempts: Number(r.attempts),
      since: Number(r.since),
      updatedAt: Number(r.updated_at),
    }))
  }

  async parkedCounts(db: Queryable): Promise<{ parked: number; refused: number }> {
    const out = { parked: 0, refused: 0 }
    for (const r of await rows(db, `SELECT state, count(*) AS n FROM ${this.S}.parked GROUP BY state`)) {
      if (r.state === 'parked' || r.state === 'refused') out[r.state] = Number(r.n)
    }
    return out
  }
}
