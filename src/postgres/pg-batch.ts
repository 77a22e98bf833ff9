import {
  addTo,
  applied,
  type GroupPlan as BaseGroupPlan,
  groupModel,
  inModelOrder,
  type Orphan,
  park,
  planGroup,
  refuse,
  remoteStates,
  upsertedRows,
} from '../repository/batch-groups.js'
import { type ForeignKey, parentKey, parentRef } from '../repository/foreign-keys.js'
import { Outcome, type RemoteBatch, type RemoteBatchResult, type Row } from '../repository/repository.js'
import { keysIn, type PgModel } from './pg-model.js'
import type { PgStore, Queryable } from './pg-store.js'

/** What the repository knows of its models' relations, computed once when it opens. */
export interface PgRelationPlan {
  models: ReadonlyMap<string, PgModel>
  /** Model names, parents before children. */
  order: readonly string[]
  /** Per table, the parent keys other tables reference in it: `table(cols)` and the columns. */
  referencedBy: ReadonlyMap<string, { ref: string; columns: string[] }[]>
  /** Models by table name. */
  byTable: ReadonlyMap<string, PgModel>
}

/** The code a row refused for a missing parent is kept with (Postgres's `foreign_key_violation`). */
export const FK_FAILED = 'PG_23503'

/** The stable code of a Postgres error: `PG_<SQLSTATE>`. */
export function pgCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code
  if (typeof code !== 'string') return undefined
  return /^[0-9A-Z]{5}$/.test(code) ? `PG_${code}` : code
}

/** Errors that end a transaction through no fault of its writes: retried as a whole. */
export function isRetryable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  // serialization_failure, deadlock_detected, lock_not_available (our lock_timeout)
  return code === '40001' || code === '40P01' || code === '55P03'
}

/** A local write committed to a row the batch wrote, while it ran: the batch is rolled back and run again. */
export class LocalWriteRaced extends Error {
  /** Retried like a serialization failure. */
  readonly code = '40001'
  constructor(model: string, rows: number) {
    super(`${rows} row(s) of ${model} were changed by the app while a remote batch wrote them; the batch is run again`)
  }
}

interface GroupPlan extends BaseGroupPlan<PgModel> {
  /** Write indexes whose sync state the bulk write recorded already. */
  recorded: Set<number>
}

/**
 * Runs a batch inside the transaction already open on `db` (the caller
 * begins, marks it as a remote apply, commits and retries): upserts parents
 * first, deletes children first; a row whose parent is neither in the
 * database nor in the batch is parked; rows with captured local changes not
 * yet sent are held back (after their rows are locked, so a write committing
 * meanwhile is seen). With `isolate`, each write runs in its own savepoint
 * and a failing one is parked (a foreign key) or refused with Postgres's
 * reason instead of failing the batch.
 */
export async function runPgBatch(
  db: Queryable,
  st: PgStore,
  plan: PgRelationPlan,
  batch: RemoteBatch,
  isolate: boolean,
): Promise<RemoteBatchResult> {
  const result: RemoteBatchResult = { groups: [], errors: [], unblocked: new Map() }
  const exact = batch.exact === true || isolate
  const groups: GroupPlan[] = []
  for (const [g, group] of batch.groups.entries()) groups.push(await planPgGroup(db, st, plan, group, g, result))
  const orphans = await findOrphans(db, plan, groups)
  const ordered = inModelOrder(groups, plan.order)
  const retry: { group: GroupPlan; write: number }[] = []
  const write = async (group: GroupPlan, i: number, last: boolean) => {
    const w = group.writes[i]!
    await db.query('SAVEPOINT meshmirror_item')
    try {
      const n = w.row === null ? await st.delete(db, group.model, [w.id]) : await st.upsert(db, group.model, [w.row])
      await db.query('RELEASE SAVEPOINT meshmirror_item')
      if (n > 0) group.outcomes[i] = Outcome.changed
      group.changed += n
      group.written.push(w.id)
    } catch (error) {
      if (isRetryable(error)) throw error
      await db.query('ROLLBACK TO SAVEPOINT meshmirror_item')
      await db.query('RELEASE SAVEPOINT meshmirror_item')
      const code = pgCode(error)
      if (code === FK_FAILED && !last) {
        retry.push({ group, write: i })
        return
      }
      if (code === FK_FAILED && w.row !== null) {
        const found = await findOrphans(db, plan, [{ ...group, upserts: new Map([[i, w.row]]), deletes: new Set() }])
        const orphan = found.get(group.model.name)?.get(i)
        if (orphan) return park(group, i, orphan, result)
      }
      refuse(group, i, (error as Error).message, code, result)
    }
  }
  // Upserts, parents first.
  for (const group of ordered) {
    const orphaned = orphans.get(group.model.name)
    const bulk: Row[] = []
    const states: { id: string; hash: string; doc: string | null }[] = []
    for (const [i, row] of group.upserts) {
      const orphan = orphaned?.get(i)
      if (orphan) park(group, i, orphan, result)
      else if (exact) await write(group, i, false)
      else {
        const w = group.writes[i]!
        bulk.push(row)
        states.push({ id: w.id, hash: w.hash, doc: w.doc })
        group.recorded.add(i)
        group.written.push(w.id)
      }
    }
    if (bulk.length > 0) group.changed += await st.upsertWithStates(db, group.model, bulk, states)
  }
  // Deletes, children first.
  for (const group of [...ordered].reverse()) {
    if (group.deletes.size === 0) continue
    if (exact) {
      for (const [i, w] of group.writes.entries()) {
        if (w.row === null && group.outcomes[i] === Outcome.written) await write(group, i, false)
      }
    } else {
      const ids = [...group.deletes]
      group.changed += await st.delete(db, group.model, ids)
      group.written.push(...ids)
    }
  }
  // Writes that met a parent not yet written (isolate): again, while that makes progress.
  for (let progress = true; retry.length > 0 && progress; ) {
    const round = retry.splice(0)
    for (const r of round) await write(r.group, r.write, false)
    progress = retry.length < round.length
  }
  for (const r of retry.splice(0)) await write(r.group, r.write, true)
  // An app transaction that changed one of these rows while the batch ran committed before the
  // batch could write the row (it waited for the row's lock): its captured change is visible now.
  // The batch is run again from the start, and holds that row back.
  for (const group of groups) {
    if (group.written.length === 0) continue
    const late = await st.pendingIds(db, group.model.name, group.written)
    if (late.size > 0) throw new LocalWriteRaced(group.model.name, late.size)
  }
  await finish(db, st, plan, groups, result)
  for (const c of batch.checkpoints) await st.setCheckpoint(db, c.key, c.value)
  return result
}

async function planPgGroup(
  db: Queryable,
  st: PgStore,
  plan: PgRelationPlan,
  group: RemoteBatch['groups'][number],
  index: number,
  result: RemoteBatchResult,
): Promise<GroupPlan> {
  const model = groupModel(plan.models, group.model)
  const pending = await st.pendingIds(
    db,
    group.model,
    group.writes.map((w) => w.id),
  )
  return { ...planGroup(model, group, index, pending, FK_FAILED, result), recorded: new Set() }
}

/**
 * Rows whose parent (by a foreign key) will not be there at commit: not in
 * the database (or deleted by the batch), and not written by the batch
 * itself (unless that row is an orphan too). One query per foreign key.
 */
async function findOrphans(
  db: Queryable,
  plan: PgRelationPlan,
  groups: readonly Pick<GroupPlan, 'model' | 'upserts' | 'deletes'>[],
): Promise<Map<string, Map<number, Orphan>>> {
  const out = new Map<string, Map<number, Orphan>>()
  const byTable = new Map(groups.map((g) => [g.model.table, g]))
  const pending: { group: (typeof groups)[number]; index: number; fk: ForeignKey; key: string }[] = []
  for (const g of groups) {
    for (const fk of g.model.foreignKeys) {
      if (fk.from.length !== fk.to.length) continue
      const wanted = new Map<string, { values: unknown[]; rows: number[] }>()
      for (const [i, row] of g.upserts) {
        const values = fk.from.map((c) => row[c])
        if (values.some((v) => v === null || v === undefined)) continue
        const key = parentKey(values)
        const entry = wanted.get(key)
        if (entry) entry.rows.push(i)
        else wanted.set(key, { values, rows: [i] })
      }
      if (wanted.size === 0) continue
      const parent = byTable.get(fk.table)
      const inBatch = new Set<string>()
      if (parent) for (const row of parent.upserts.values()) inBatch.add(parentKey(fk.to.map((c) => row[c])))
      const present = await existingKeys(
        db,
        plan,
        fk,
        g.model.schema,
        [...wanted.values()].map((w) => w.values),
      )
      // A parent the batch deletes is gone at commit, unless the batch writes it again.
      const parentModel = plan.byTable.get(fk.table)
      if (parent && parentModel && parent.deletes.size > 0) {
        for (const id of parent.deletes) {
          const row = parentModel.keys.length === fk.to.length ? idKey(parentModel, id, fk) : undefined
          if (row !== undefined) present.delete(row)
        }
      }
      for (const [key, { rows }] of wanted) {
        if (present.has(key)) continue
        for (const index of rows) pending.push({ group: g, index, fk, key })
      }
    }
  }
  // Parents only in the batch: fine unless the parent row is an orphan itself (repeat until stable).
  const orphanOf = (g: (typeof groups)[number], i: number) => out.get(g.model.name)?.has(i) === true
  for (let changed = true; changed; ) {
    changed = false
    for (const p of pending) {
      if (orphanOf(p.group, p.index)) continue
      const parent = byTable.get(p.fk.table)
      let ok = false
      if (parent) {
        for (const [j, row] of parent.upserts) {
          if (parentKey(p.fk.to.map((c) => row[c])) === p.key && !orphanOf(parent, j)) {
            ok = true
            break
          }
        }
      }
      if (ok) continue
      let m = out.get(p.group.model.name)
      if (!m) {
        m = new Map()
        out.set(p.group.model.name, m)
      }
      const ref = parentRef(p.fk)
      m.set(p.index, {
        waitsFor: ref,
        waitsKey: p.key,
        reason: `its parent ${ref} = ${p.key} is not there yet; it is applied when the parent arrives`,
      })
      changed = true
    }
  }
  return out
}

/** The parent key (as `parentKey` writes it) of a parent's document id, when the foreign key references its primary key. */
function idKey(parent: PgModel, id: string, fk: ForeignKey): string | undefined {
  if (fk.to.join('\u0000') !== parent.keys.join('\u0000')) return undefined
  try {
    const params: unknown[] = []
    keysIn(parent, [id], params)
    return parentKey(params.map((a) => (a as string[])[0]).map((v, i) => numeric(parent, i, v)))
  } catch {
    return undefined
  }
}

function numeric(m: PgModel, i: number, v: unknown): unknown {
  return m.keyColumns[i]?.kind === 'int' && typeof v === 'string' ? Number(v) : v
}

/** Which of the parent keys `values` (per foreign key column) exist, as `parentKey` strings. */
async function existingKeys(
  db: Queryable,
  plan: PgRelationPlan,
  fk: ForeignKey,
  schema: string,
  values: unknown[][],
): Promise<Set<string>> {
  const parent = plan.byTable.get(fk.table)
  const cols = fk.to.map((c) => parent?.byName.get(c))
  const params: unknown[] = []
  const arrays = fk.to.map((_, i) => values.map((v) => textOf(v[i])))
  const refs = arrays.map((a, i) => {
    params.push(a)
    return `$${params.length}::${cols[i]?.sqlType ?? 'text'}[]`
  })
  const colList = fk.to.map((c) => `p."${c.replaceAll('"', '""')}"`)
  const table = `"${schema.replaceAll('"', '""')}"."${fk.table.replaceAll('"', '""')}"`
  const select = colList.map((c) => `${c}::text`).join(', ')
  const where =
    fk.to.length === 1
      ? `${colList[0]} = ANY(${refs[0]})`
      : `(${colList.join(', ')}) IN (SELECT * FROM unnest(${refs.join(', ')}))`
  const res = await db.query<Record<string, string>>({
    text: `SELECT ${select} FROM ${table} AS p WHERE ${where}`,
    values: params,
    rowMode: 'array',
  } as never)
  const out = new Set<string>()
  for (const r of res.rows as unknown as string[][]) {
    out.add(parentKey(r.map((v, i) => (cols[i]?.kind === 'int' ? Number(v) : v))))
  }
  return out
}

function textOf(v: unknown): string | null {
  if (v === null || v === undefined) return null
  if (typeof v === 'object' && typeof (v as { $int?: unknown }).$int === 'string') return (v as { $int: string }).$int
  if (typeof v === 'boolean') return v ? 'true' : 'false'
  return String(v)
}

/** Records sync state, parked entries, and which parked documents the written rows unblock. */
async function finish(
  db: Queryable,
  st: PgStore,
  plan: PgRelationPlan,
  groups: GroupPlan[],
  result: RemoteBatchResult,
): Promise<void> {
  const anyParked = await st.anyParked(db)
  for (const p of groups) {
    await st.putSyncStates(db, p.model.name, remoteStates(p))
    if (anyParked && p.written.length > 0) await st.unpark(db, p.model.name, p.written)
    if (p.park.length > 0) await st.park(db, p.model.name, p.park)
    result.groups.push({ changed: p.changed, outcomes: p.outcomes })
  }
  if (!anyParked) return
  const deleted = groups.some((p) => p.writes.some((w, i) => w.row === null && applied(p.outcomes[i])))
  if (deleted) {
    for (const w of await st.parkedRemovals(db)) addTo(result.unblocked, w.model, w.id)
  }
  for (const p of groups) await pgUnblockedBy(db, st, plan, p.model, upsertedRows(p), result.unblocked)
}

/** Adds to `into` the parked documents waiting for a parent among `rows` (of `model`, just written). */
export async function pgUnblockedBy(
  db: Queryable,
  st: PgStore,
  plan: PgRelationPlan,
  model: PgModel,
  rows: readonly Row[],
  into: Map<string, string[]>,
): Promise<void> {
  const refs = plan.referencedBy.get(model.table)
  if (!refs || rows.length === 0 || !(await st.anyParked(db, 'parked'))) return
  for (const { ref, columns } of refs) {
    const keys = rows.map((row) => parentKey(columns.map((c) => row[c])))
    for (const w of await st.waitingFor(db, ref, keys)) addTo(into, w.model, w.id)
  }
}
