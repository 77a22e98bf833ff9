import type Database from 'better-sqlite3'
import { ErrorCode, ValidationError } from '../errors.js'
import { isBusy } from './busy-retry.js'
import { parentKey } from './foreign-keys.js'
import type { KeyMap } from './key-map.js'
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
): RemoteBatchResult {
  return st.keys.batch(() => runBatch(db, st, parked, plan, batch, isolate))
}

function runBatch(
  db: Database.Database,
  st: ModelStatements,
  parked: ParkedStore,
  plan: RelationPlan,
  batch: RemoteBatch,
  isolate: boolean,
): RemoteBatchResult {
  const result: RemoteBatchResult = { groups: [], errors: [], unblocked: new Map() }
  const exact = batch.exact === true || isolate
  db.exec('BEGIN IMMEDIATE')
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
        refuse(group, i, (error as Error).message, typeof code === 'string' ? code : undefined, result)
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
    for (const group of [...ordered].reverse()) {
      if (group.rows.deletes.size === 0) continue
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

function refuse(p: GroupPlan, i: number, message: string, code: string | undefined, result: RemoteBatchResult): void {
  const w = p.writes[i]!
  p.outcomes[i] = Outcome.refused
  const parkedFk = code === FK_FAILED
  p.park.push({
    id: w.id,
    state: parkedFk ? 'parked' : 'refused',
    op: w.row === null ? 'delete' : 'upsert',
    reason: message,
    code: code ?? null,
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
  // A parked removal waits for rows still referencing it to go: try it again once a delete
  // went through. Not after deletes that failed: a batch of parked removals tried again and
  // parked again would make every one of them be tried again, and again, for as long as
  // their children stay, each time reading the child tables while holding the write lock.
  const deleted = groups.some((p) =>
    p.writes.some((w, i) => w.row === null && (p.outcomes[i] === Outcome.written || p.outcomes[i] === Outcome.changed)),
  )
  if (deleted) {
    for (const w of parked.parkedRemovals()) {
      const list = result.unblocked.get(w.model)
      if (list) list.push(w.id)
      else result.unblocked.set(w.model, [w.id])
    }
  }
  for (const p of groups) {
    const rows: Row[] = []
    for (const [i, row] of p.rows.upserts) {
      const o = p.outcomes[i]
      if (o === Outcome.written || o === Outcome.changed) rows.push(row)
    }
    unblockedBy(parked, plan, p.model, rows, result.unblocked)
  }
}

/**
 * Adds to `into` the parked documents waiting for a parent among `rows` (of
 * `model`, just written): one probe of the parked list's index per row and
 * referenced key.
 */
export function unblockedBy(
  parked: ParkedStore,
  plan: RelationPlan,
  model: ModelInfo,
  rows: readonly Row[],
  into: Map<string, string[]>,
): void {
  const refs = plan.referencedBy.get(model.table)
  if (!refs || rows.length === 0 || !parked.any('parked')) return
  for (const row of rows) {
    for (const { ref, columns } of refs) {
      for (const waiting of parked.waitingFor(ref, parentKey(columns.map((c) => row[c])))) {
        const list = into.get(waiting.model)
        if (list) list.push(waiting.id)
        else into.set(waiting.model, [waiting.id])
      }
    }
  }
}
