import type Database from 'better-sqlite3'
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
} from './batch-groups.js'
import { isBusy } from './busy-retry.js'
import { parentKey, parentRef, referencingRef } from './foreign-keys.js'
import type { KeyMap } from './key-map.js'
import type { LockHold } from './lock-hold.js'
import type { ModelInfo } from './model-definition.js'
import type { ParentCheck } from './parent-check.js'
import type { ParkedStore } from './parked-store.js'
import { Outcome, type RemoteBatch, type RemoteBatchResult, type Row } from './repository.js'
import type { ModelStatements } from './sqlite-statements.js'

/** What the repository knows of its models' relations, computed once when it opens. */
export interface RelationPlan {
  models: ReadonlyMap<string, ModelInfo>
  /** Model names, parents before children. */
  order: readonly string[]
  /** Whether the connection enforces foreign keys (`PRAGMA foreign_keys`). */
  enforced: boolean
  /** Whether any model holds keys of a `local` model (translated, and their parents checked, always). */
  translated: boolean
  /** Per table, the parent keys other tables reference in it: `table(cols)` and the columns. */
  referencedBy: ReadonlyMap<string, { ref: string; columns: string[] }[]>
  /** Tables that tables not mirrored reference: a removal parked there cannot name what it waits for. */
  referencedUnmirrored: ReadonlySet<string>
  /**
   * Per table, the foreign keys (of any table) that keep its rows from
   * being deleted while referenced (`NO ACTION`, `RESTRICT`): the child
   * table, its columns, and the parent's columns they hold.
   */
  restrictedBy: ReadonlyMap<string, readonly { table: string; from: string[]; to: string[] }[]>
  parents: ParentCheck
  /** The writer connection's key translation (shared by the parent check and the writes). */
  keys: KeyMap
}

const FK_FAILED = 'SQLITE_CONSTRAINT_FOREIGNKEY'

interface GroupPlan extends BaseGroupPlan<ModelInfo> {
  /** Per id it deletes, the parent keys the row referenced (read before the delete; see `freedKeys`). */
  freed: Map<string, { ref: string; key: string }[]>
}

/**
 * Runs a batch in one transaction on `db` (one attempt: SQLITE_BUSY is
 * thrown for the caller to retry).
 *
 * Upserts go parents first and deletes children first (foreign keys), with
 * the constraints deferred to the commit, so rows that reference each other
 * in one batch (a self-reference, a cycle) go in together. A row whose parent
 * is neither in the database nor in the batch is parked, not written; rows
 * with captured local changes not yet sent are held back. With `isolate`,
 * each write runs in a savepoint with the constraints checked at once, and a
 * failing one is parked (a foreign key) or refused (anything else) instead of
 * failing the batch.
 */
export function executeRemoteBatch(
  db: Database.Database,
  st: ModelStatements,
  parked: ParkedStore,
  plan: RelationPlan,
  batch: RemoteBatch,
  isolate: boolean,
  hold?: LockHold,
): RemoteBatchResult {
  return st.keys.batch(() => runBatch(db, st, parked, plan, batch, isolate, hold))
}

function runBatch(
  db: Database.Database,
  st: ModelStatements,
  parked: ParkedStore,
  plan: RelationPlan,
  batch: RemoteBatch,
  isolate: boolean,
  hold: LockHold | undefined,
): RemoteBatchResult {
  const result: RemoteBatchResult = { groups: [], errors: [], unblocked: new Map() }
  const exact = batch.exact === true || isolate
  db.exec('BEGIN IMMEDIATE')
  hold?.begun()
  try {
    st.setFlag()
    if (plan.enforced) db.pragma(`defer_foreign_keys = ${isolate ? 'OFF' : 'ON'}`)
    const groups = batch.groups.map((group, g) => planSqliteGroup(st, plan, group, g, result))
    const orphans =
      plan.enforced || plan.translated
        ? plan.parents.orphans(groups, !plan.enforced)
        : new Map<string, Map<number, Orphan>>()
    const ordered = inModelOrder(groups, plan.order)
    // Keys of new `local` rows first, so rows of the batch that reference each other translate.
    if (plan.translated) claimKeys(st, ordered, orphans)
    const retry: { group: GroupPlan; write: number }[] = []
    const write = (group: GroupPlan, i: number, last: boolean) => {
      const w = group.writes[i]!
      if (isolate) db.exec('SAVEPOINT meshmirror_item')
      try {
        const n = w.row === null ? st.delete(group.model, [w.id]) : st.upsert(group.model, [w.row])
        if (isolate) db.exec('RELEASE meshmirror_item')
        if (n > 0) group.outcomes[i] = Outcome.changed
        group.changed += n
        group.written.push(w.id)
      } catch (error) {
        if (!isolate || isBusy(error)) throw error
        db.exec('ROLLBACK TO meshmirror_item')
        db.exec('RELEASE meshmirror_item')
        const code = (error as { code?: unknown }).code
        // Constraints are checked at once here: a parent later in the batch may still come.
        if (code === FK_FAILED && !last) {
          retry.push({ group, write: i })
          return
        }
        if (code === FK_FAILED && w.row !== null) {
          // Name the parent it waits for, so that its arrival applies the row.
          const rows = { model: group.model, upserts: new Map([[i, w.row]]), deletes: new Set<string>() }
          const orphan = plan.parents.orphans([rows]).get(group.model.name)?.get(i)
          if (orphan) return park(group, i, orphan, result)
        }
        // A removal of a row still referenced: name the key the referencing rows hold, so that
        // their going (and only that) applies it.
        const waits = code === FK_FAILED && w.row === null ? removalWaits(st, plan, group.model, w.id) : undefined
        refuse(group, i, (error as Error).message, typeof code === 'string' ? code : undefined, result, waits)
      }
    }
    // Upserts, parents first.
    for (const group of ordered) {
      const orphaned: Map<number, Orphan> | undefined = orphans.get(group.model.name)
      const bulk: Row[] = []
      for (const [i, row] of group.upserts) {
        const orphan = orphaned?.get(i)
        if (orphan) park(group, i, orphan, result)
        else if (exact) write(group, i, false)
        else {
          bulk.push(row)
          group.written.push(group.writes[i]!.id)
        }
      }
      if (bulk.length > 0) group.changed += st.upsert(group.model, bulk)
    }
    // Deletes, children first.
    const removalsWait = parked.anyRemoval()
    // Tables whose removals in this batch are still to go (a self-reference, a cycle).
    const toDelete = new Set(ordered.filter((g) => g.deletes.size > 0).map((g) => g.model.table))
    for (const group of [...ordered].reverse()) {
      if (group.deletes.size === 0) continue
      if (removalsWait) freedKeys(st, group)
      if (exact) {
        group.writes.forEach((w, i) => {
          if (w.row === null && group.outcomes[i] === Outcome.written) write(group, i, false)
        })
      } else {
        // A removal still referenced would fail the whole batch at its commit, and the batch
        // would be written again record by record: find them first, with one read per child table.
        const held = plan.enforced ? stillReferenced(st, plan, group, toDelete) : new Set<string>()
        group.writes.forEach((w, i) => {
          if (w.row !== null || !held.has(w.id) || group.outcomes[i] !== Outcome.written) return
          refuse(
            group,
            i,
            'FOREIGN KEY constraint failed',
            FK_FAILED,
            result,
            removalWaits(st, plan, group.model, w.id),
          )
        })
        const ids = held.size === 0 ? [...group.deletes] : [...group.deletes].filter((id) => !held.has(id))
        group.changed += st.delete(group.model, ids)
        group.written.push(...ids)
      }
      toDelete.delete(group.model.table)
    }
    // Writes that met a parent not yet written (isolate): again, while that makes progress.
    for (let progress = true; retry.length > 0 && progress; ) {
      const round = retry.splice(0)
      for (const r of round) write(r.group, r.write, false)
      progress = retry.length < round.length
    }
    for (const r of retry.splice(0)) write(r.group, r.write, true)
    finish(st, parked, plan, groups, result)
    for (const c of batch.checkpoints) st.setCheckpoint(c.key, c.value)
    st.clearFlag()
    hold?.committing()
    db.exec('COMMIT')
    return result
  } catch (error) {
    if (db.inTransaction) db.exec('ROLLBACK')
    throw error
  }
}

/** Claims (allocates when new) the keys of the `local` rows the batch writes. */
function claimKeys(st: ModelStatements, groups: GroupPlan[], orphans: Map<string, Map<number, Orphan>>): void {
  for (const g of groups) {
    if (g.model.keyMode !== 'local') continue
    const key = g.model.keys[0]!
    const orphaned = orphans.get(g.model.name)
    const ids: string[] = []
    for (const [i, row] of g.upserts) {
      const id = row[key]
      if (!orphaned?.has(i) && typeof id === 'string') ids.push(id)
    }
    st.keys.claimAll(g.model, ids)
  }
}

function planSqliteGroup(
  st: ModelStatements,
  plan: RelationPlan,
  group: RemoteBatch['groups'][number],
  index: number,
  result: RemoteBatchResult,
): GroupPlan {
  const model = groupModel(plan.models, group.model)
  const pending = st.pendingIds(
    group.model,
    group.writes.map((w) => w.id),
  )
  return { ...planGroup(model, group, index, pending, FK_FAILED, result), freed: new Map() }
}

/** Records sync state, parked entries, and which parked documents the written rows unblock. */
function finish(
  st: ModelStatements,
  parked: ParkedStore,
  plan: RelationPlan,
  groups: GroupPlan[],
  result: RemoteBatchResult,
): void {
  const anyParked = parked.any()
  for (const p of groups) {
    const states = remoteStates(p)
    if (states.length > 0) st.putSyncStates(p.model.name, states)
    if (anyParked && p.written.length > 0) parked.unpark(p.model.name, p.written)
    if (p.park.length > 0) parked.park(p.model.name, p.park)
    result.groups.push({ changed: p.changed, outcomes: p.outcomes })
  }
  if (!anyParked) return
  // A parked removal waits for the rows referencing it to go: it is tried again when a delete
  // of one of them went through, found by the key that row held. Not after any delete: with
  // many removals parked, each delete would try every one of them again, each reading the
  // (often unindexed) child table while holding the write lock.
  let deleted = false
  for (const p of groups) {
    p.writes.forEach((w, i) => {
      if (w.row !== null || !applied(p.outcomes[i])) return
      deleted = true
      for (const f of p.freed.get(w.id) ?? []) {
        for (const waiting of parked.waitingFor(f.ref, f.key)) addTo(result.unblocked, waiting.model, waiting.id)
      }
    })
  }
  // Removals that could not name what they wait for are tried after any delete.
  if (deleted) for (const w of parked.unnamedRemovals()) addTo(result.unblocked, w.model, w.id)
  for (const p of groups) unblockedBy(parked, plan, p.model, upsertedRows(p), result.unblocked)
}

/** Most keys one lookup of referencing rows binds (SQLite allows 32,766 values). */
const KEYS_PER_LOOKUP = 500

/**
 * The ids among `group`'s removals whose rows other rows still reference
 * through a foreign key that forbids it: one read of each referencing table
 * for the whole batch (an unindexed one is scanned once, not once per row).
 */
function stillReferenced(
  st: ModelStatements,
  plan: RelationPlan,
  group: GroupPlan,
  toDelete: ReadonlySet<string>,
): Set<string> {
  const out = new Set<string>()
  // Referencing rows this batch removes after these are left to the commit's check.
  const fks = plan.restrictedBy.get(group.model.table)?.filter((fk) => !toDelete.has(fk.table))
  if (!fks?.length || group.deletes.size === 0) return out
  const rows = st.getMany(group.model, [...group.deletes])
  for (const fk of fks) {
    // The key each removed row holds, as the referencing rows would hold it.
    const byKey = new Map<string, string[]>()
    const keys: unknown[][] = []
    for (const [id, row] of rows) {
      const values = fk.to.map((c) => row[c])
      if (values.some((v) => v === null || v === undefined)) continue
      const k = JSON.stringify(values)
      const ids = byKey.get(k)
      if (ids) ids.push(id)
      else {
        byKey.set(k, [id])
        keys.push(values)
      }
    }
    for (const values of st.referencing(fk.table, fk.from, keys, KEYS_PER_LOOKUP)) {
      for (const id of byKey.get(JSON.stringify(values)) ?? []) out.add(id)
    }
  }
  return out
}

/** The parent keys each row `group` deletes references, for the removals parked on them. */
function freedKeys(st: ModelStatements, group: GroupPlan): void {
  if (group.model.foreignKeys.length === 0) return
  for (const [id, row] of st.getMany(group.model, [...group.deletes]))
    group.freed.set(id, referencedKeys(group.model, row))
}

/** The parent keys `row` (of `model`) references, as the removals parked on them name them. */
function referencedKeys(model: ModelInfo, row: Row): { ref: string; key: string }[] {
  const out: { ref: string; key: string }[] = []
  for (const fk of model.foreignKeys) {
    const values = fk.from.map((c) => row[c])
    // A null in a foreign key references nothing.
    if (values.some((v) => v === null || v === undefined)) continue
    out.push({ ref: referencingRef(parentRef(fk)), key: parentKey(values) })
  }
  return out
}

/**
 * What the parked removal of `id` (of `model`) waits for: the rows holding
 * its key. Named only when one key of the table is referenced, and only by
 * mirrored tables (whose deletes are seen); otherwise undefined, and the
 * removal is tried after any delete.
 */
function removalWaits(
  st: ModelStatements,
  plan: RelationPlan,
  model: ModelInfo,
  id: string,
): { waitsFor: string; waitsKey: string } | undefined {
  const refs = plan.referencedBy.get(model.table)
  if (refs?.length !== 1 || plan.referencedUnmirrored.has(model.table)) return undefined
  const row = st.get(model, id)
  if (!row) return undefined
  const { ref, columns } = refs[0]!
  return { waitsFor: referencingRef(ref), waitsKey: parentKey(columns.map((c) => row[c])) }
}

/**
 * Adds to `into` the parked documents waiting for a parent among `rows` (of
 * `model`, just written), and the parked removals waiting for `removed`
 * (rows of `model` just deleted, as they were) to go: one probe of the parked
 * list's index per row and key.
 */
export function unblockedBy(
  parked: ParkedStore,
  plan: RelationPlan,
  model: ModelInfo,
  rows: readonly Row[],
  into: Map<string, string[]>,
  removed: readonly Row[] = [],
): void {
  if (rows.length + removed.length === 0 || !parked.any('parked')) return
  for (const row of rows) {
    for (const { ref, columns } of plan.referencedBy.get(model.table) ?? []) {
      for (const waiting of parked.waitingFor(ref, parentKey(columns.map((c) => row[c])))) {
        addTo(into, waiting.model, waiting.id)
      }
    }
  }
  for (const row of removed) {
    for (const f of referencedKeys(model, row)) {
      for (const waiting of parked.waitingFor(f.ref, f.key)) addTo(into, waiting.model, waiting.id)
    }
  }
}
