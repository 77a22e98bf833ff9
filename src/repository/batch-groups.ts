import { ErrorCode, ValidationError } from '../errors.js'
import {
  Outcome,
  type ParkEntry,
  type RemoteBatch,
  type RemoteBatchResult,
  type RemoteWrite,
  type Row,
  type WriteOutcome,
} from './repository.js'

// The part of running a remote batch that does not depend on the database:
// sorting a group's writes into upserts, deletes, held and refused ones, and
// recording what became of each. The SQLite and Postgres repositories both
// plan their groups here and differ only in how they read and write rows.

/** A row whose parent is missing: what it waits for. */
export interface Orphan {
  waitsFor: string
  waitsKey: string
  reason: string
}

/** One group of a remote batch (the writes of one model), planned and then applied. */
export interface GroupPlan<M extends { name: string }> {
  /** The group's index in the batch. */
  index: number
  model: M
  writes: RemoteWrite[]
  outcomes: WriteOutcome[]
  /** Rows to upsert, by write index. */
  upserts: Map<number, Row>
  /** Ids to delete. */
  deletes: Set<string>
  changed: number
  park: ParkEntry[]
  written: string[]
  /** The error code a foreign-key failure carries in this database: such a write is parked, not refused. */
  fkFailed: string
}

/** The model a batch group names. Throws `INVALID_MODEL` for one the repository does not hold. */
export function groupModel<M>(models: ReadonlyMap<string, M>, name: string): M {
  const model = models.get(name)
  if (!model) {
    throw new ValidationError(ErrorCode.INVALID_MODEL, `Unknown model ${JSON.stringify(name)} in a remote batch.`, {
      details: { model: name },
    })
  }
  return model
}

/**
 * Sorts the writes of `group` (of `model`): those whose ids are `pending`
 * (captured local changes not yet sent) or that the batch holds back are
 * held, those the caller refused are recorded as refused, and the rest
 * become upserts and deletes.
 */
export function planGroup<M extends { name: string }>(
  model: M,
  group: RemoteBatch['groups'][number],
  index: number,
  pending: Set<string>,
  fkFailed: string,
  result: RemoteBatchResult,
): GroupPlan<M> {
  for (const id of group.hold) pending.add(id)
  const p: GroupPlan<M> = {
    index,
    model,
    writes: group.writes,
    outcomes: new Array(group.writes.length).fill(Outcome.written),
    upserts: new Map(),
    deletes: new Set(),
    changed: 0,
    park: [],
    written: [],
    fkFailed,
  }
  group.writes.forEach((w, i) => {
    if (pending.has(w.id)) p.outcomes[i] = Outcome.held
    else if (w.refused) refuse(p, i, w.refused.reason, w.refused.code, result)
    else if (w.row === null) p.deletes.add(w.id)
    else p.upserts.set(i, w.row)
  })
  return p
}

/** The groups in model order (`order`: model names, parents before children). */
export function inModelOrder<G extends GroupPlan<{ name: string }>>(
  groups: readonly G[],
  order: readonly string[],
): G[] {
  return [...groups].sort((a, b) => order.indexOf(a.model.name) - order.indexOf(b.model.name))
}

/** Parks write `i` of `p`, an upsert whose parent is missing. */
export function park(p: GroupPlan<{ name: string }>, i: number, orphan: Orphan, result: RemoteBatchResult): void {
  p.outcomes[i] = Outcome.parked
  p.park.push({ id: p.writes[i]!.id, state: 'parked', op: 'upsert', code: p.fkFailed, ...orphan })
  result.errors.push({ group: p.index, write: i, message: orphan.reason, code: p.fkFailed })
}

/**
 * Refuses write `i` of `p` with `message`; one failing a foreign key is
 * parked instead (`waits`: what a parked removal waits for, when known).
 */
export function refuse(
  p: GroupPlan<{ name: string }>,
  i: number,
  message: string,
  code: string | undefined,
  result: RemoteBatchResult,
  waits?: { waitsFor: string; waitsKey: string },
): void {
  const w = p.writes[i]!
  const parkedFk = code === p.fkFailed
  p.outcomes[i] = parkedFk ? Outcome.parked : Outcome.refused
  p.park.push({
    id: w.id,
    state: parkedFk ? 'parked' : 'refused',
    op: w.row === null ? 'delete' : 'upsert',
    reason: message,
    code: code ?? null,
    ...waits,
  })
  result.errors.push({ group: p.index, write: i, message, ...(code === undefined ? {} : { code }) })
}

/** Whether a write with outcome `o` reached the database. */
export function applied(o: WriteOutcome | undefined): boolean {
  return o === Outcome.written || o === Outcome.changed
}

/** The sync states of the writes of `p` that reached the database. */
export function remoteStates(
  p: GroupPlan<{ name: string }>,
): { id: string; hash: string; origin: 'remote'; doc: string | null }[] {
  const states: { id: string; hash: string; origin: 'remote'; doc: string | null }[] = []
  p.writes.forEach((w, i) => {
    if (applied(p.outcomes[i])) states.push({ id: w.id, hash: w.hash, origin: 'remote', doc: w.doc })
  })
  return states
}

/** The rows `p` upserted that reached the database. */
export function upsertedRows(p: GroupPlan<{ name: string }>): Row[] {
  const rows: Row[] = []
  for (const [i, row] of p.upserts) if (applied(p.outcomes[i])) rows.push(row)
  return rows
}

/** Adds `id` to the list of `model` in `into`. */
export function addTo(into: Map<string, string[]>, model: string, id: string): void {
  const list = into.get(model)
  if (list) list.push(id)
  else into.set(model, [id])
}
