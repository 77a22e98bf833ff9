import { ErrorCode, MeshmirrorError } from '../errors.js'
import { contentHash } from '../mesh/content-hash.js'
import { mappedDocument } from '../mesh/validate.js'
import { DELETED_HASH, type DocSyncState, type Row } from '../repository/repository.js'
import type { AdapterBinding } from './adapter-binding.js'
import { pushLocal } from './local-push.js'
import type { Reconcile } from './outbox-drain.js'
import { ingest, knownState } from './remote-intake.js'
import { messageOf, RejectReason, type SyncRuntime } from './runtime.js'

/** What a notify call did. */
export interface NotifyResult {
  sent: boolean
  /** Why nothing was sent: the content is what was just applied from the mesh (`echo`), or was already sent. */
  reason?: 'echo' | 'unchanged' | 'receive-only'
}

/**
 * Sends a record the app wrote (for repositories without change capture).
 * An echo — the app notifying content it just received from the mesh — is
 * recognised by content hash, never by id alone: a genuine local edit racing
 * a remote one always goes out.
 */
export async function notifyUpsert(
  rt: SyncRuntime,
  binding: AdapterBinding,
  record: Row,
  reconcile: Reconcile,
): Promise<NotifyResult> {
  if (!binding.sends) return { sent: false, reason: 'receive-only' }
  let id: string
  let hash: string
  try {
    id = binding.adapter.documentId(record)
    hash = contentHash(mappedDocument(binding.adapter.toDocument(record), id)).hash
  } catch (error) {
    rt.reject(binding.model, '', 'local', RejectReason.invalidRecord, error)
    throw new MeshmirrorError(
      ErrorCode.DOCUMENT_REJECTED,
      `Cannot map the ${binding.model} record: ${messageOf(error)}`,
      { cause: error, details: { model: binding.model } },
    )
  }
  return notify(rt, binding, id, hash, record, reconcile)
}

/** Sends the removal of a record the app deleted. */
export async function notifyDelete(
  rt: SyncRuntime,
  binding: AdapterBinding,
  id: string,
  reconcile: Reconcile,
): Promise<NotifyResult> {
  if (!binding.sends) return { sent: false, reason: 'receive-only' }
  return notify(rt, binding, String(id), DELETED_HASH, undefined, reconcile)
}

async function notify(
  rt: SyncRuntime,
  binding: AdapterBinding,
  id: string,
  hash: string,
  row: Row | undefined,
  reconcile: Reconcile,
): Promise<NotifyResult> {
  const model = binding.model
  const stored = (await rt.repository.syncStates(model, [id])).get(id)
  const known = knownState(rt, model, id, stored)
  if (known?.hash === hash) {
    // Content equal to what was just applied from the mesh is the app echoing our write.
    const echo = known.origin === 'remote'
    rt.metrics.count(model, echo ? 'echoSuppressed' : 'pushSkippedUnchanged')
    return { sent: false, reason: echo ? 'echo' : 'unchanged' }
  }
  // The row as the database holds it now: a remote change applied between the app's write
  // and this call wrote over the app's edit, and is to be put right once the edit is sent.
  const overwritten = known?.origin === 'remote' && (await databaseHash(rt, binding, id)) === known.hash
  // A removal is sent even for a document this device never exchanged.
  const state: DocSyncState | undefined =
    stored ?? (row === undefined ? { hash: '', origin: 'local', doc: null } : undefined)
  const result = await pushLocal(rt, [{ binding, docs: [{ id, row }], stored: new Map(state ? [[id, state]] : []) }])
  try {
    await rt.repository.transaction(async (tx) => {
      for (const [m, states] of result.states) await tx.putSyncStates(m, states)
    })
    for (const [m, states] of result.states) rt.states.record(m, states)
  } finally {
    result.release()
  }
  rt.events.emit('pushed', { upserts: result.upserts, removals: result.removals, unchanged: 0, models: [model] })
  for (const [m, ids] of result.reconcile) await reconcile(m, ids)
  if (overwritten) await restore(rt, binding, id)
  return { sent: true }
}

/** The content hash of the document's row as the database holds it now (DELETED_HASH when there is none). */
async function databaseHash(rt: SyncRuntime, binding: AdapterBinding, id: string): Promise<string | undefined> {
  try {
    const row = await rt.repository.get(binding.model, id)
    if (row === undefined) return DELETED_HASH
    return contentHash(mappedDocument(binding.adapter.toDocument(row), id)).hash
  } catch {
    return undefined
  }
}

/**
 * Writes the mesh's content of a document into the database whatever the
 * sync state says: the state records the edit just sent, while the row
 * holds an older remote version that had overwritten it.
 */
async function restore(rt: SyncRuntime, binding: AdapterBinding, id: string): Promise<void> {
  if (!binding.receives) return
  const docs = await rt.mesh.find({ collection: binding.collection, filter: { _id: { $in: [id] } } })
  await ingest(rt, binding, docs, docs.length === 0 ? [{ id }] : [], { force: true })
}
