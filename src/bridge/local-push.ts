import { ValidationError } from '../errors.js'
import { contentHash } from '../mesh/content-hash.js'
import type { Document, JsonObject } from '../mesh/document.js'
import { jsonEqual } from '../mesh/json.js'
import type { MeshWriter } from '../mesh/mesh-store.js'
import { mappedDocument } from '../mesh/validate.js'
import { DELETED_HASH, type DocSyncState, type DocSyncStateEntry, type Row } from '../repository/repository.js'
import type { AdapterBinding } from './adapter-binding.js'
import { changedFields } from './changed-fields.js'
import { docKey } from './doc-key.js'
import { RejectReason, type SyncRuntime } from './runtime.js'

/** The local state of one document to send: its row, or none when deleted. */
export interface LocalDoc {
  id: string
  row: Row | undefined
  /**
   * The row as it was when last exchanged (captured before the app's first
   * update since): what the app changed is the difference. Null: no base
   * (a new row), send every field. Undefined: use the sync state's document.
   */
  base?: Row | null
}

export interface PushGroup {
  binding: AdapterBinding
  docs: LocalDoc[]
  /** Sync state as stored, by id. */
  stored: Map<string, DocSyncState>
}

export interface PushOptions {
  /** Leave documents the mesh already has untouched (first contact: the mesh wins) and report them. */
  skipExisting?: boolean
  /**
   * Written in the same mesh transaction as a batch that sends counter
   * increments, so a batch the mesh committed but the repository did not
   * acknowledge is recognised after a crash (increments are not idempotent).
   */
  mark?: { collection: string; doc: Document }
  /** The batch's increments are in the mesh already: send everything else, not them. */
  skipIncrements?: boolean
}

export interface PushResult {
  upserts: number
  /** Counter increments sent. */
  increments: number
  removals: number
  unchanged: number
  /** Sync state to commit (with the outbox acknowledgement, if any). */
  states: Map<string, DocSyncStateEntry[]>
  /** Documents whose mesh content differs from the local row after the push: apply them back. */
  reconcile: Map<string, string[]>
  /** With `skipExisting`: documents the mesh already had. */
  existing: Map<string, Document[]>
  /**
   * Ends the window in which the sent documents count as being sent (their
   * echo recognised, remote changes of them held back). Call once their
   * sync state is committed.
   */
  release(): void
}

interface Planned {
  id: string
  doc: Document | null
  hash: string
  json: string | null
  base: JsonObject | null
  send: boolean
  /** The mesh refuses it: left out of the batch (and the row as it is). */
  refused?: boolean
}

/**
 * Sends local documents to the mesh in one mesh transaction: only the fields
 * that changed since the last exchange (so concurrent edits of other fields
 * survive the merge), removals for deleted rows, nothing for content the
 * mesh already has. Refused records and documents are counted and skipped.
 * The caller commits `states` to the repository afterwards.
 */
/** A push that has sent nothing yet; `release` ends its hold on the pushed documents. */
function emptyPushResult(release: () => void): PushResult {
  return {
    upserts: 0,
    increments: 0,
    removals: 0,
    unchanged: 0,
    states: new Map(),
    reconcile: new Map(),
    existing: new Map(),
    release,
  }
}

export async function pushLocal(rt: SyncRuntime, groups: PushGroup[], options: PushOptions = {}): Promise<PushResult> {
  const keys: string[] = []
  const result = emptyPushResult(() => {
    for (const key of keys) rt.pushes.delete(key)
    rt.overlap.released(keys)
  })
  const plans = new Map<AdapterBinding, Planned[]>()
  for (const group of groups) plans.set(group.binding, plan(rt, group, result))
  for (const [binding, planned] of plans) {
    for (const p of planned) {
      if (!p.send) continue
      const key = docKey(binding.model, p.id)
      rt.pushes.set(key, p.hash)
      keys.push(key)
      rt.overlap.pushing(key)
      // Content read from the mesh before this push and not written yet would land after it.
      const queued = rt.queue.depth === 0 ? undefined : rt.queue.find(binding.model, p.id)
      if (queued && queued.kind !== 'refuse' && !queued.superseded) {
        queued.superseded = true
        rt.overlap.rereadAfterPush(binding.model, p.id)
      }
    }
  }
  try {
    try {
      await rt.mesh.transaction(async (tx) => {
        await write(tx, plans, result, options)
        if (options.mark && result.increments > 0) await tx.upsert(options.mark.collection, [options.mark.doc])
      })
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error
      // A document was refused: find which ones, then send the others (and the mark) in one
      // transaction, so the batch still reaches the mesh whole or not at all.
      for (const [binding, planned] of plans) {
        for (const p of planned) {
          const refusal = await refusedAlone(rt, binding, p, options)
          if (refusal === undefined) continue
          p.refused = true
          p.send = false
          p.hash = ''
          rt.reject(binding.model, p.id, 'local', RejectReason.meshRefused, refusal)
        }
      }
      resetCounts(result)
      await rt.mesh.transaction(async (tx) => {
        await write(tx, plans, result, options)
        if (options.mark && result.increments > 0) await tx.upsert(options.mark.collection, [options.mark.doc])
      })
    }
  } catch (error) {
    result.release()
    throw error
  }
  for (const [binding, planned] of plans) {
    const states: DocSyncStateEntry[] = []
    for (const p of planned) {
      if (p.send && p.hash !== '') {
        states.push({ id: p.id, hash: p.hash, origin: 'local', doc: rt.keepBaseDocs ? p.json : null })
      }
    }
    if (states.length > 0) result.states.set(binding.model, states)
    rt.metrics.count(binding.model, 'pushed', planned.filter((p) => p.send).length)
  }
  return result
}

/** Thrown to roll back a transaction that only tried whether the mesh takes a document (an Error, as backends expect). */
const TRIED = new Error('tried alone, rolled back')

/** Why the mesh refuses `p` on its own, found by writing it in a transaction that is rolled back. */
async function refusedAlone(
  rt: SyncRuntime,
  binding: AdapterBinding,
  p: Planned,
  options: PushOptions,
): Promise<ValidationError | undefined> {
  if (!p.send) return undefined
  const scratch = emptyPushResult(() => undefined)
  try {
    await rt.mesh.transaction(async (tx) => {
      await write(tx, new Map([[binding, [{ ...p }]]]), scratch, options)
      throw TRIED
    })
  } catch (error) {
    if (error === TRIED) return undefined
    if (error instanceof ValidationError) return error
    throw error
  }
  return undefined
}

function plan(rt: SyncRuntime, group: PushGroup, result: PushResult): Planned[] {
  const { binding, stored } = group
  const out: Planned[] = []
  for (const { id, row, base: baseRow } of group.docs) {
    const state = stored.get(id)
    let base: JsonObject | null = state?.doc ? (JSON.parse(state.doc) as JsonObject) : null
    if (baseRow !== undefined) {
      try {
        base = baseRow === null ? null : binding.adapter.toDocument(baseRow)
      } catch {
        // An earlier row the adapter cannot map: send every field.
        base = null
      }
    }
    if (row === undefined) {
      const send = state !== undefined && state.hash !== DELETED_HASH
      out.push({ id, doc: null, hash: DELETED_HASH, json: null, base, send })
      continue
    }
    let doc: Document
    try {
      const mapped = binding.adapter.toDocument(row)
      const mappedId = binding.adapter.documentId(row)
      if (mapped._id !== undefined && String(mapped._id) !== mappedId) {
        throw new Error(
          `toDocument gave _id ${JSON.stringify(mapped._id)} but documentId gave ${JSON.stringify(mappedId)}.`,
        )
      }
      doc = mappedDocument(mapped, mappedId)
    } catch (error) {
      rt.reject(binding.model, id, 'local', RejectReason.invalidRecord, error)
      continue
    }
    const { hash, json } = contentHash(doc)
    const send = state?.hash !== hash
    if (!send) {
      result.unchanged++
      rt.metrics.count(binding.model, 'pushSkippedUnchanged')
    }
    out.push({ id: doc._id, doc, hash, json, base: state?.hash === DELETED_HASH ? null : base, send })
  }
  return out
}

async function write(
  tx: MeshWriter,
  plans: Map<AdapterBinding, Planned[]>,
  result: PushResult,
  options: PushOptions,
): Promise<void> {
  for (const [binding, planned] of plans) {
    const collection = binding.collection
    const upserts: Document[] = []
    // Rows saved whole over a document the mesh holds: every field is written, so the row
    // supersedes a concurrent removal instead of re-creating only the fields that differed.
    const wholeRows: Document[] = []
    const removals: string[] = []
    const reconcile: string[] = []
    const existing: Document[] = []
    const increments: [string, string, number][] = []
    let sent = 0
    for (const p of planned) {
      if (p.refused) continue
      if (p.doc === null) {
        if (p.send) removals.push(p.id)
        // A removal of a row never exchanged removes nothing from the mesh (it removes only what
        // it saw), but the mesh may hold the document from another device by now, held back from
        // the row while this change was waiting: apply it.
        else if (binding.receives && (await tx.get(collection, p.id)) !== undefined) reconcile.push(p.id)
        continue
      }
      const current = await tx.get(collection, p.id)
      if (options.skipExisting && current !== undefined) {
        p.send = false
        existing.push(current)
        continue
      }
      if (!p.send) {
        // Nothing to send, but the mesh may hold a change (or a removal) this row has not received yet.
        if (binding.receives && (current === undefined || !jsonEqual(current, p.doc))) reconcile.push(p.id)
        continue
      }
      // A removed document is re-created whole; a live one gets the changed fields.
      const fields = current === undefined ? p.doc : changedFields(p.doc, p.base)
      const after = { ...current, ...fields }
      if (current !== undefined && p.base !== null) {
        for (const [field, by] of counterDeltas(binding, fields, p.base, current)) {
          delete fields[field]
          increments.push([p.id, field, by])
          after[field] = (current[field] as number) + by
        }
      }
      if (current !== undefined && p.base === null) wholeRows.push(fields)
      else if (current === undefined || Object.keys(fields).length > 1) upserts.push(fields)
      sent++
      if (binding.receives && current !== undefined && !jsonEqual(after, p.doc)) reconcile.push(p.id)
    }
    if (upserts.length > 0) await tx.upsert(collection, upserts, { mode: 'merge' })
    if (wholeRows.length > 0) await tx.upsert(collection, wholeRows, { mode: 'merge', rewriteEqual: true })
    if (!options.skipIncrements) {
      for (const [id, field, by] of increments) await tx.increment(collection, id, field, by)
      result.increments += increments.length
    }
    if (removals.length > 0) await tx.remove(collection, removals)
    result.upserts += sent
    result.removals += removals.length
    if (reconcile.length > 0) append(result.reconcile, binding.model, reconcile)
    if (existing.length > 0) append(result.existing, binding.model, existing)
  }
}

/**
 * The counter fields among `fields` that hold a number here, in the base and
 * in the mesh: each is sent as the difference from the base.
 */
function counterDeltas(
  binding: AdapterBinding,
  fields: Document,
  base: JsonObject,
  current: Document,
): [string, number][] {
  const out: [string, number][] = []
  for (const field of binding.adapter.counterFields ?? []) {
    const value = fields[field]
    const from = base[field]
    if (typeof value !== 'number' || typeof from !== 'number' || typeof current[field] !== 'number') continue
    out.push([field, value - from])
  }
  return out
}

function resetCounts(result: PushResult): void {
  result.upserts = 0
  result.increments = 0
  result.removals = 0
  result.reconcile.clear()
  result.existing.clear()
}

function append<T>(map: Map<string, T[]>, key: string, items: T[]): void {
  const list = map.get(key)
  if (list) list.push(...items)
  else map.set(key, items)
}
