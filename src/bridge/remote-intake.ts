import { ErrorCode, hasCode, MeshmirrorError } from '../errors.js'
import { contentHash } from '../mesh/content-hash.js'
import type { Document, JsonObject } from '../mesh/document.js'
import { DELETED_HASH, type DocSyncState } from '../repository/repository.js'
import type { AdapterBinding } from './adapter-binding.js'
import type { ApplyTally } from './apply-queue.js'
import type { ReadWindow } from './push-overlap.js'
import { docKey, messageOf, RejectReason, type SyncRuntime } from './runtime.js'

/** A document removed from the mesh. */
export interface Removal {
  id: string
  /** The document before its removal, when known. */
  previous?: Document
}

export interface IngestOptions {
  /** Queue even when the content equals what was last exchanged (restore). */
  force?: boolean
  /** Counts the outcome into a restore's report. */
  tally?: ApplyTally
  /** Apply documents outside the scope too (restoring a model this device only sends). */
  anyScope?: boolean
  /** The read that returned the documents: those whose local push began meanwhile are read again. */
  window?: ReadWindow
}

/** What the last exchanged state of a document is, counting changes queued or being sent. */
export function knownState(
  rt: SyncRuntime,
  model: string,
  id: string,
  stored: DocSyncState | undefined,
): DocSyncState | undefined {
  const queued = rt.queue.depth === 0 ? undefined : rt.queue.find(model, id)
  // A refused document is not known content: the same content arriving again is examined again.
  // Nor is content a local push made out of date.
  if (queued && queued.kind !== 'refuse' && !queued.superseded)
    return { hash: queued.hash, origin: 'remote', doc: queued.doc }
  const pushing = rt.pushes.size === 0 ? undefined : rt.pushes.get(docKey(model, id))
  if (pushing !== undefined) return { hash: pushing, origin: 'local', doc: null }
  return stored
}

/**
 * Takes remote documents and removals for one adapter through change
 * detection, scope and mapping into the apply queue. Call inside the
 * binding's lock, right after reading them from the mesh.
 */
export async function ingest(
  rt: SyncRuntime,
  binding: AdapterBinding,
  docs: readonly Document[],
  removals: readonly Removal[],
  options: IngestOptions = {},
): Promise<void> {
  if (docs.length === 0 && removals.length === 0) return
  const { model, adapter } = binding
  // The stored content (for scope checks) is only needed for removals.
  const stored = await rt.states.lookup(
    model,
    docs.map((d) => d._id),
  )
  // For removals, the content before (to check the scope): the stored document, or the local row.
  const before = new Map<string, Document>()
  if (removals.length > 0) {
    const ids = removals.map((r) => r.id)
    for (const [id, state] of await rt.repository.syncStates(model, ids)) {
      stored.set(id, state)
      if (state.doc) before.set(id, JSON.parse(state.doc) as Document)
    }
    const unknown = ids.filter((id) => !before.has(id) && stored.has(id))
    if (unknown.length > 0) {
      for (const [id, row] of await rt.repository.getMany(model, unknown)) {
        try {
          before.set(id, adapter.toDocument(row))
        } catch {
          // A row the adapter cannot map: the removal is judged without it.
        }
      }
    }
  }
  const ctx = rt.context()
  const now = performance.now()
  const tally = options.tally
  const counts = {
    received: docs.length + removals.length,
    echoSuppressed: 0,
    skippedUnchanged: 0,
    filtered: 0,
    deferred: 0,
  }
  // Content read while a local push of the document was underway may be from before it: read it again after.
  const overlapsPush = (id: string): boolean => {
    if (options.force) return false
    const key = docKey(model, id)
    if (!rt.pushes.has(key) && !options.window?.has(key)) return false
    rt.overlap.rereadAfterPush(model, id)
    counts.deferred++
    return true
  }
  // Refused documents are reported now and kept (with the checkpoint past them) by the apply queue.
  const refuse = (id: string, hash: string, reason: string, error: unknown) => {
    rt.reject(model, id, 'remote', reason, error)
    if (tally) tally.rejected++
    const code = (error as { code?: unknown }).code
    rt.queue.put({
      model,
      id,
      kind: 'refuse',
      refusal: { reason: `${reason}: ${messageOf(error)}`, ...(typeof code === 'string' ? { code } : {}) },
      hash,
      doc: null,
      receivedAt: now,
    })
  }
  for (const doc of docs) {
    const id = doc._id
    const { hash, json } = contentHash(doc)
    const known = knownState(rt, model, id, stored.get(id))
    if (!options.force && known?.hash === hash) {
      counts[known.origin === 'local' ? 'echoSuppressed' : 'skippedUnchanged']++
      if (tally) tally.unchanged++
      continue
    }
    if (overlapsPush(id)) continue
    if (!options.anyScope && !binding.accepts(doc, ctx)) {
      counts.filtered++
      continue
    }
    let record: ReturnType<typeof adapter.fromDocument>
    try {
      record = adapter.fromDocument(doc)
    } catch (error) {
      const reason = hasCode(error, ErrorCode.DOCUMENT_REJECTED)
        ? RejectReason.invalidDocument
        : RejectReason.adapterError
      refuse(id, hash, reason, error)
      continue
    }
    if (record === null) {
      counts.filtered++
      continue
    }
    let recordId: string
    try {
      recordId = adapter.documentId(record)
    } catch (error) {
      refuse(id, hash, RejectReason.invalidDocument, error)
      continue
    }
    if (recordId !== id) {
      refuse(
        id,
        hash,
        RejectReason.idMismatch,
        new Error(`documentId of the mapped record is ${JSON.stringify(recordId)}, not the document's _id.`),
      )
      continue
    }
    const base = rt.keepBaseDocs ? json : null
    rt.queue.put({ model, id, kind: 'upsert', record, hash, doc: base, receivedAt: now, ...(tally ? { tally } : {}) })
  }
  for (const removal of removals) {
    const known = knownState(rt, model, removal.id, stored.get(removal.id))
    // Never exchanged, or already removed here: nothing to delete.
    if (!options.force && (known === undefined || known.hash === DELETED_HASH)) {
      counts[known?.origin === 'local' ? 'echoSuppressed' : 'skippedUnchanged']++
      if (tally) tally.unchanged++
      continue
    }
    if (overlapsPush(removal.id)) continue
    const previous = removal.previous ?? before.get(removal.id) ?? parseDoc(known?.doc ?? null)
    if (previous !== undefined && !options.anyScope && !binding.accepts(previous, ctx)) {
      counts.filtered++
      continue
    }
    rt.queue.put({
      model,
      id: removal.id,
      kind: 'delete',
      hash: DELETED_HASH,
      doc: null,
      receivedAt: now,
      ...(tally ? { tally } : {}),
    })
  }
  for (const [counter, n] of Object.entries(counts)) rt.metrics.count(model, counter as keyof typeof counts, n)
}

function parseDoc(json: string | null): Document | undefined {
  if (json === null) return undefined
  try {
    return JSON.parse(json) as JsonObject as Document
  } catch (error) {
    throw new MeshmirrorError(
      ErrorCode.DATABASE_UNUSABLE,
      `A sync state document in the database is not JSON (${messageOf(error)}); the database was changed outside meshmirror.`,
      { cause: error },
    )
  }
}
