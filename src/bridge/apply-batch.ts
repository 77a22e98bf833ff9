import { ErrorCode, hasCode, MeshmirrorError } from '../errors.js'
import {
  Outcome,
  type ParkEntry,
  type RemoteBatch,
  type RemoteWrite,
  type RepositoryTx,
  type Row,
} from '../repository/repository.js'
import type { SyncAdapter } from './adapter.js'
import type { ApplyItem, CheckpointMark } from './apply-queue.js'
import { docKey } from './doc-key.js'
import { messageOf, RejectReason, type SyncRuntime } from './runtime.js'

/** What one batch did, reported once its transaction committed. */
interface BatchOutcome {
  perModel: Map<string, { applied: number; unchanged: number; deferred: number }>
  rejected: { item: ApplyItem; error: unknown }[]
  parked: { item: ApplyItem; reason: string }[]
  /** Restore tallies to count once the transaction commits (it may run more than once). */
  tallies: { item: ApplyItem; field: 'applied' | 'unchanged' | 'deferred' }[]
  /** Items written (their sync state recorded), by model. */
  written: Map<string, ApplyItem[]>
  /** Parked documents the batch's rows unblocked, by model. */
  unblocked: Map<string, string[]>
  /** How long the write lock was held, when the repository timed it (ms). */
  heldMs?: number
}

function emptyOutcome(unblocked: Map<string, string[]>): BatchOutcome {
  return { perModel: new Map(), rejected: [], parked: [], tallies: [], written: new Map(), unblocked }
}

/** SQLite's code for a row whose parent (by a foreign key) is missing. */
const FK_FAILED = 'SQLITE_CONSTRAINT_FOREIGNKEY'

/** True for failures that retrying cannot fix because the bridge is shutting down. */
export function isShutdownError(error: unknown): boolean {
  return hasCode(error, ErrorCode.ABORTED) || hasCode(error, ErrorCode.STORE_CLOSED)
}

/**
 * Writes one batch of received changes in one repository transaction, marked
 * as a remote apply (change capture skips it), together with the sync state
 * of every written document and the checkpoints the batch makes safe.
 *
 * Rows with local edits not yet sent are held back (the merged result comes
 * back from the mesh). When the transaction fails because of one record, the
 * batch is written again record by record and only the failing records are
 * refused.
 */
export async function applyBatch(
  rt: SyncRuntime,
  items: ApplyItem[],
  marks: CheckpointMark[],
): Promise<number | undefined> {
  const repo = rt.repository
  if (items.length === 0) {
    if (repo.applyRemoteBatch) await repo.applyRemoteBatch({ groups: [], checkpoints: marks }, { signal: rt.shutdown })
    else {
      await repo.transaction(
        async (tx) => {
          for (const mark of marks) await tx.setCheckpoint(mark.key, mark.value)
        },
        { signal: rt.shutdown },
      )
    }
    return
  }
  const started = performance.now()
  const groups = new Map<string, ApplyItem[]>()
  // Parents before children (the repository's model order), so a batch's rows find their parents.
  for (const model of repo.models()) groups.set(model, [])
  for (const item of items) {
    const list = groups.get(item.model)
    if (list) list.push(item)
    else groups.set(item.model, [item])
  }
  for (const [model, list] of groups) if (list.length === 0) groups.delete(model)
  // Adapters that write records themselves need the transaction callback; the rest go as data.
  const asData =
    repo.applyRemoteBatch !== undefined &&
    [...groups.keys()].every((m) => {
      const a = rt.bindings.get(m)?.adapter
      return a !== undefined && !a.upsertToRepository && !a.deleteFromRepository
    })
  const options = { origin: 'remote' as const, signal: rt.shutdown }
  let outcome: BatchOutcome
  if (asData) outcome = await writeAsData(rt, groups, marks)
  else {
    try {
      outcome = await repo.transaction((tx) => writeGroups(rt, tx, groups, marks, false), options)
    } catch (error) {
      if (isShutdownError(error)) throw error
      rt.logger.debug('apply batch failed; writing record by record', { error: String(error) })
      outcome = await repo.transaction((tx) => writeGroups(rt, tx, groups, marks, true), options)
    }
  }
  const committed = performance.now()
  let applied = 0
  let unchanged = 0
  let deferred = 0
  for (const [model, o] of outcome.perModel) {
    rt.metrics.count(model, 'applied', o.applied)
    rt.metrics.count(model, 'skippedUnchanged', o.unchanged)
    rt.metrics.count(model, 'deferred', o.deferred)
    applied += o.applied
    unchanged += o.unchanged
    deferred += o.deferred
  }
  for (const [model, written] of outcome.written) {
    rt.states.record(
      model,
      written.map((i) => ({ id: i.id, hash: i.hash, origin: 'remote' as const })),
    )
  }
  for (const { item, field } of outcome.tallies) item.tally![field]++
  for (const { item, error } of outcome.rejected) {
    // Refused by the adapter: reported when it was received; only kept here.
    if (item.kind !== 'refuse') rt.reject(item.model, item.id, 'remote', RejectReason.repositoryRefused, error)
    if (item.tally) item.tally.rejected++
  }
  for (const { item, reason } of outcome.parked) {
    rt.metrics.count(item.model, 'parked')
    rt.events.emit('parked', { model: item.model, id: item.id, reason })
    if (item.tally) item.tally.deferred++
  }
  for (const [model, ids] of outcome.unblocked) rt.retry(model, ids)
  let oldest = committed
  for (const item of items) if (item.receivedAt < oldest) oldest = item.receivedAt
  const latencyMs = committed - started
  rt.metrics.batch(latencyMs, committed - oldest)
  rt.events.emit('applied', {
    rows: items.length,
    applied,
    unchanged,
    deferred,
    rejected: outcome.rejected.length,
    parked: outcome.parked.length,
    latencyMs,
    lagMs: committed - oldest,
  })
  return outcome.heldMs
}

/** Writes the batch through the repository's data path (possibly on another thread). */
async function writeAsData(
  rt: SyncRuntime,
  groups: Map<string, ApplyItem[]>,
  marks: CheckpointMark[],
): Promise<BatchOutcome> {
  const entries = [...groups]
  let exact = false
  const batch: RemoteBatch = {
    groups: entries.map(([model, items]) => {
      const hold: string[] = []
      const writes: RemoteWrite[] = new Array(items.length)
      items.forEach((i, k) => {
        if (i.tally) exact = true
        if (i.superseded || rt.pushes.has(docKey(model, i.id))) hold.push(i.id)
        writes[k] = { id: i.id, row: i.kind === 'upsert' ? (i.record as Row) : null, hash: i.hash, doc: i.doc }
        if (i.kind === 'refuse') writes[k].refused = i.refusal ?? { reason: 'refused' }
      })
      return { model, writes, hold }
    }),
    checkpoints: marks,
    ...(exact ? { exact } : {}),
  }
  const result = await rt.repository.applyRemoteBatch!(batch, { signal: rt.shutdown })
  const outcome = emptyOutcome(result.unblocked)
  if (result.heldMs !== undefined) outcome.heldMs = result.heldMs
  result.groups.forEach((g, n) => {
    const [model, items] = entries[n]!
    let written = 0
    let deferred = 0
    const done: ApplyItem[] = []
    outcome.written.set(model, done)
    g.outcomes.forEach((o, k) => {
      const item = items[k]!
      if (o === Outcome.written || o === Outcome.changed) {
        written++
        done.push(item)
      } else if (o === Outcome.held) deferred++
      if (item.tally && o !== Outcome.refused && o !== Outcome.parked)
        outcome.tallies.push({
          item,
          field: o === Outcome.changed ? 'applied' : o === Outcome.held ? 'deferred' : 'unchanged',
        })
    })
    outcome.perModel.set(model, { applied: g.changed, unchanged: written - g.changed, deferred })
  })
  for (const e of result.errors) {
    const item = entries[e.group]![1][e.write]!
    if (result.groups[e.group]!.outcomes[e.write] === Outcome.parked) {
      outcome.parked.push({ item, reason: e.message })
      continue
    }
    const error = new MeshmirrorError(ErrorCode.DOCUMENT_REJECTED, e.message, {
      details: e.code === undefined ? {} : { sqliteCode: e.code },
    })
    outcome.rejected.push({ item, error })
  }
  return outcome
}

async function writeGroups(
  rt: SyncRuntime,
  tx: RepositoryTx,
  groups: Map<string, ApplyItem[]>,
  marks: CheckpointMark[],
  isolate: boolean,
): Promise<BatchOutcome> {
  const outcome = emptyOutcome(new Map())
  for (const [model, items] of groups) {
    const binding = rt.bindings.get(model)
    if (!binding) continue
    const adapter = binding.adapter
    const dirty = await tx.pendingIds(
      model,
      items.map((i) => i.id),
    )
    for (const i of items) if (i.superseded || rt.pushes.has(docKey(model, i.id))) dirty.add(i.id)
    const counts = { applied: 0, unchanged: 0, deferred: 0 }
    const written: ApplyItem[] = []
    const ready: ApplyItem[] = []
    const keep: ParkEntry[] = []
    for (const item of items) {
      if (dirty.has(item.id)) {
        counts.deferred++
        if (item.tally) outcome.tallies.push({ item, field: 'deferred' })
      } else if (item.kind === 'refuse') {
        const refusal = item.refusal ?? { reason: 'refused' }
        keep.push({ id: item.id, state: 'refused', op: 'upsert', reason: refusal.reason, code: refusal.code ?? null })
        outcome.rejected.push({ item, error: new MeshmirrorError(ErrorCode.DOCUMENT_REJECTED, refusal.reason) })
      } else ready.push(item)
    }
    // Items counted into a restore's report are written one by one for exact outcomes.
    const bulk = isolate ? [] : ready.filter((i) => i.tally === undefined)
    const single = isolate ? ready : ready.filter((i) => i.tally !== undefined)
    if (bulk.length > 0) {
      const ups = bulk.filter((i) => i.kind === 'upsert')
      const dels = bulk.filter((i) => i.kind === 'delete')
      const changed = (await writeUpserts(adapter, tx, ups)) + (await writeDeletes(adapter, tx, dels))
      counts.applied += changed
      counts.unchanged += bulk.length - changed
      written.push(...bulk)
    }
    for (const item of single) {
      const write = () =>
        item.kind === 'upsert' ? writeUpserts(adapter, tx, [item]) : writeDeletes(adapter, tx, [item])
      try {
        const changed = isolate ? await tx.savepoint(write) : await write()
        counts.applied += changed
        counts.unchanged += 1 - changed
        if (item.tally) outcome.tallies.push({ item, field: changed > 0 ? 'applied' : 'unchanged' })
        written.push(item)
      } catch (error) {
        if (!isolate || isShutdownError(error)) throw error
        const code = (error as { code?: unknown }).code
        const reason = messageOf(error)
        const op = item.kind === 'delete' ? 'delete' : 'upsert'
        if (code === FK_FAILED) {
          keep.push({ id: item.id, state: 'parked', op, reason, code })
          outcome.parked.push({ item, reason })
        } else {
          keep.push({ id: item.id, state: 'refused', op, reason, code: typeof code === 'string' ? code : null })
          outcome.rejected.push({ item, error })
        }
      }
    }
    outcome.written.set(model, written)
    if (written.length > 0) {
      await tx.putSyncStates(
        model,
        written.map((i) => ({ id: i.id, hash: i.hash, origin: 'remote' as const, doc: i.doc })),
      )
      await tx.unpark(
        model,
        written.map((i) => i.id),
      )
    }
    if (keep.length > 0) await tx.park(model, keep)
    outcome.perModel.set(model, counts)
  }
  for (const mark of marks) await tx.setCheckpoint(mark.key, mark.value)
  return outcome
}

async function writeUpserts(adapter: SyncAdapter, tx: RepositoryTx, items: ApplyItem[]): Promise<number> {
  if (items.length === 0) return 0
  const records = items.map((i) => i.record as Row)
  if (adapter.upsertToRepository) return clamp(await adapter.upsertToRepository(tx, records), records.length)
  return tx.upsert(adapter.model, records)
}

async function writeDeletes(adapter: SyncAdapter, tx: RepositoryTx, items: ApplyItem[]): Promise<number> {
  if (items.length === 0) return 0
  const ids = items.map((i) => i.id)
  if (adapter.deleteFromRepository) return clamp(await adapter.deleteFromRepository(tx, ids), ids.length)
  return tx.delete(adapter.model, ids)
}

function clamp(n: number | undefined, max: number): number {
  return n === undefined ? max : Math.max(0, Math.min(max, n))
}
