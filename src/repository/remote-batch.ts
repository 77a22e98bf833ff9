import type Database from 'better-sqlite3'
import { ErrorCode, ValidationError } from '../errors.js'
import { isBusy } from './busy-retry.js'
import { parentKey, parentRef, referencingRef } from './foreign-keys.js'
import type { KeyMap } from './key-map.js'
import type { LockHold } from './lock-hold.js'
import type { ModelInfo } from './model-definition.js'
import type { BatchRows, Orphan, ParentCheck } from './parent-check.js'
import type { ParkedStore } from './parked-store.js'
import {
  Outcome,
  type ParkEntry,
  type RemoteBatch,
  type RemoteBatchResult,
  type RemoteWrite,
  type Row,
  type WriteOutcome,
} from './repository.js'
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
  parents: ParentCheck
  /** The writer connection's key translation (shared by the parent check and the writes). */
  keys: KeyMap
}

const FK_FAILED = 'SQLITE_CONSTRAINT_FOREIGNKEY'

interface GroupPlan {
  index: number
  model: ModelInfo
  writes: RemoteWrite[]
  outcomes: WriteOutcome[]
  rows: BatchRows
  changed: number
  park: ParkEntry[]
  written: string[]
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
    const groups = batch.groups.map((group, g) => planGroup(st, plan, group, g, result))
    const orphans =
      plan.enforced || plan.translated
        ? plan.parents.orphans(
            groups.map((p) => p.rows),
            !plan.enforced,
          )
        : new Map<string, Map<number, Orphan>>()
    const ordered = [...groups].sort((a, b) => plan.order.indexOf(a.model.name) - plan.order.indexOf(b.model.name))
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
      for (const [i, row] of group.rows.upserts) {
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
    for (const group of [...ordered].reverse()) {
      if (group.rows.deletes.size === 0) continue
      if (removalsWait) freedKeys(st, group)
      if (exact) {
        group.writes.forEach((w, i) => {
          if (w.row === null && group.outcomes[i] === Outcome.written) write(group, i, false)
        })
      } else {
        const ids = [...group.rows.deletes]
        group.changed += st.delete(group.model, ids)
        group.written.push(...ids)
      }
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
    for (const [i, row] of g.rows.upserts) {
      const id = row[key]
      if (!orphaned?.has(i) && typeof id === 'string') ids.push(id)
    }
    st.keys.claimAll(g.model, ids)
  }
}

function planGroup(
  st: ModelStatements,
  plan: RelationPlan,
  group: RemoteBatch['groups'][number],
  index: number,
  result: RemoteBatchResult,
): GroupPlan {
  const model = plan.models.get(group.model)
  if (!model) {
    throw new ValidationError(
      ErrorCode.INVALID_MODEL,
      `Unknown model ${JSON.stringify(group.model)} in a remote batch.`,
      {
        details: { model: group.model },
      },
    )
  }
  const held = st.pendingIds(
    group.model,
    group.writes.map((w) => w.id),
  )
  for (const id of group.hold) held.add(id)
  const p: GroupPlan = {
    index,
    model,
    writes: group.writes,
    outcomes: new Array(group.writes.length).fill(Outcome.written),
    rows: { model, upserts: new Map(), deletes: new Set() },
    changed: 0,
    park: [],
    written: [],
    freed: new Map(),
  }
  group.writes.forEach((w, i) => {
    if (held.has(w.id)) p.outcomes[i] = Outcome.held
    else if (w.refused) refuse(p, i, w.refused.reason, w.refused.code, result)
    else if (w.row === null) p.rows.deletes.add(w.id)
    else p.rows.upserts.set(i, w.row)
  })
  return p
}

function park(p: GroupPlan, i: number, orphan: Orphan, result: RemoteBatchResult): void {
  p.outcomes[i] = Outcome.parked
  p.park.push({ id: p.writes[i]!.id, state: 'parked', op: 'upsert', code: FK_FAILED, ...orphan })
  result.errors.push({ group: p.index, write: i, message: orphan.reason, code: FK_FAILED })
}

function refuse(
  p: GroupPlan,
  i: number,
  message: string,
  code: string | undefined,
  result: RemoteBatchResult,
  waits?: { waitsFor: string; waitsKey: string },
): void {
  const w = p.writes[i]!
  p.outcomes[i] = Outcome.refused
  const parkedFk = code === FK_FAILED
  p.park.push({
    id: w.id,
    state: parkedFk ? 'parked' : 'refused',
    op: w.row === null ? 'delete' : 'upsert',
    reason: message,
    code: code ?? null,
    ...waits,
  })
  if (parkedFk) p.outcomes[i] = Outcome.parked
  result.errors.push({ group: p.index, write: i, message, ...(code === undefined ? {} : { code }) })
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
    const states: { id: string; hash: string; origin: 'remote'; doc: string | null }[] = []
    p.writes.forEach((w, i) => {
      const o = p.outcomes[i]
      if (o === Outcome.written || o === Outcome.changed)
        states.push({ id: w.id, hash: w.hash, origin: 'remote', doc: w.doc })
    })
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
      if (w.row !== null || (p.outcomes[i] !== Outcome.written && p.outcomes[i] !== Outcome.changed)) return
      deleted = true
      for (const f of p.freed.get(w.id) ?? []) {
        for (const waiting of parked.waitingFor(f.ref, f.key)) addTo(result.unblocked, waiting.model, waiting.id)
      }
    })
  }
  // Removals that could not name what they wait for are tried after any delete.
  if (deleted) for (const w of parked.unnamedRemovals()) addTo(result.unblocked, w.model, w.id)
  for (const p of groups) {
    const rows: Row[] = []
    for (const [i, row] of p.rows.upserts) {
      const o = p.outcomes[i]
      if (o === Outcome.written || o === Outcome.changed) rows.push(row)
    }
    unblockedBy(parked, plan, p.model, rows, result.unblocked)
  }
}

function addTo(into: Map<string, string[]>, model: string, id: string): void {
  const list = into.get(model)
  if (list) list.push(id)
  else into.set(model, [id])
}

/** The parent keys each row `group` deletes references, for the removals parked on them. */
function freedKeys(st: ModelStatements, group: GroupPlan): void {
  if (group.model.foreignKeys.length === 0) return
  for (const [id, row] of st.getMany(group.model, [...group.rows.deletes]))
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
