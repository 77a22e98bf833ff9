import { ErrorCode, hasCode, MeshmirrorError } from '../errors.js'
import { contentHash } from '../mesh/content-hash.js'
import type { Document, JsonObject } from '../mesh/document.js'
import { mappedDocument } from '../mesh/validate.js'
import { DELETED_HASH, type DocSyncState, type Row } from '../repository/repository.js'
import type { SyncContext } from './adapter.js'
import type { AdapterBinding } from './adapter-binding.js'
import type { ApplyTally } from './apply-queue.js'
import { docKey } from './doc-key.js'
import type { ReadWindow } from './push-overlap.js'
import { messageOf, RejectReason, type SyncRuntime } from './runtime.js'

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
  /**
   * Compare documents with the rows as the database holds them too, not
   * only with what was last exchanged: a row that does not hold the content
   * is written even when the sync state says it was exchanged.
   */
  checkRows?: boolean
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
  const { stored, before } = await readExchanged(rt, binding, docs, removals)
  // A document parked or refused here was received but not applied, so nothing says it was exchanged:
  // while any is kept, every removal is applied, which forgets a kept document it names.
  const kept =
    removals.length > 0 && !options.force
      ? await rt.repository.parkedCounts().then((c) => c.parked + c.refused > 0)
      : false
  const rows = options.checkRows ? await rowHashes(rt, binding, docs) : undefined
  const intake = new Intake(rt, binding, options, docs.length + removals.length, kept, rows)
  for (const doc of docs) intake.document(doc, stored.get(doc._id))
  for (const removal of removals) intake.removal(removal, stored.get(removal.id), before.get(removal.id))
  intake.countInto(rt.metrics)
}

/** The content hash of each document's row as the database holds it (absent: no row, or one the adapter cannot map). */
async function rowHashes(
  rt: SyncRuntime,
  binding: AdapterBinding,
  docs: readonly Document[],
): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  if (docs.length === 0) return out
  for (const [id, row] of await rt.repository.getMany(
    binding.model,
    docs.map((d) => d._id),
  )) {
    try {
      out.set(id, contentHash(mappedDocument(binding.adapter.toDocument(row), id)).hash)
    } catch {
      // Not mappable: compared as not holding the content.
    }
  }
  return out
}

/**
 * The sync state of the documents, as last exchanged; for removals also the
 * content before (to check the scope): the stored document, or the local row.
 */
async function readExchanged(
  rt: SyncRuntime,
  { model, adapter }: AdapterBinding,
  docs: readonly Document[],
  removals: readonly Removal[],
): Promise<{ stored: Map<string, DocSyncState>; before: Map<string, Document> }> {
  // The stored content (for scope checks) is only needed for removals.
  const stored = await rt.states.lookup(
    model,
    docs.map((d) => d._id),
  )
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
  return { stored, before }
}

/** One intake of remote changes for one adapter: each document is skipped, deferred, filtered, refused or queued, and counted. */
class Intake {
  private readonly model: string
  private readonly ctx: SyncContext
  private readonly now = performance.now()
  private readonly counts: Record<IntakeCounter, number>

  constructor(
    private readonly rt: SyncRuntime,
    private readonly binding: AdapterBinding,
    private readonly options: IngestOptions,
    received: number,
    /** Documents are kept as parked or refused: removals are applied even when nothing says they were exchanged. */
    private readonly kept = false,
    /** With `checkRows`: the content hash of each document's row as the database holds it. */
    private readonly rows?: ReadonlyMap<string, string>,
  ) {
    this.model = binding.model
    this.ctx = rt.context()
    this.counts = { received, echoSuppressed: 0, skippedUnchanged: 0, filtered: 0, deferred: 0 }
  }

  /** A document written in the mesh. */
  document(doc: Document, stored: DocSyncState | undefined): void {
    const id = doc._id
    const { hash, json } = contentHash(doc)
    const known = knownState(this.rt, this.model, id, stored)
    if (!this.options.force && known?.hash === hash && (this.rows === undefined || this.rows.get(id) === hash)) {
      this.countUnchanged(known)
      return
    }
    if (this.overlapsPush(id)) return
    if (!this.inScope(doc)) return
    const record = this.map(doc, hash)
    if (record === undefined) return
    const { tally } = this.options
    const base = this.rt.keepBaseDocs ? json : null
    this.rt.queue.put({
      model: this.model,
      id,
      kind: 'upsert',
      record,
      hash,
      doc: base,
      receivedAt: this.now,
      ...(tally ? { tally } : {}),
    })
  }

  /** A document removed from the mesh; `before` is its content as this device last knew it, if it does. */
  removal(removal: Removal, stored: DocSyncState | undefined, before: Document | undefined): void {
    const known = knownState(this.rt, this.model, removal.id, stored)
    // Never exchanged, or already removed here: nothing to delete.
    if (!this.options.force && !this.kept && (known === undefined || known.hash === DELETED_HASH)) {
      this.countUnchanged(known)
      return
    }
    if (this.overlapsPush(removal.id)) return
    const previous = removal.previous ?? before ?? parseDoc(known?.doc ?? null)
    if (previous !== undefined && !this.inScope(previous)) return
    const { tally } = this.options
    this.rt.queue.put({
      model: this.model,
      id: removal.id,
      kind: 'delete',
      hash: DELETED_HASH,
      doc: null,
      receivedAt: this.now,
      ...(tally ? { tally } : {}),
    })
  }

  /** Adds this intake's counts to the metrics. */
  countInto(metrics: SyncRuntime['metrics']): void {
    for (const [counter, n] of Object.entries(this.counts)) metrics.count(this.model, counter as IntakeCounter, n)
  }

  /** The content is what was last exchanged: an echo of a local change, or a repeat of a remote one. */
  private countUnchanged(known: DocSyncState | undefined): void {
    this.counts[known?.origin === 'local' ? 'echoSuppressed' : 'skippedUnchanged']++
    if (this.options.tally) this.options.tally.unchanged++
  }

  /** Content read while a local push of the document was underway may be from before it: read it again after. */
  private overlapsPush(id: string): boolean {
    if (this.options.force) return false
    const key = docKey(this.model, id)
    if (!this.rt.pushes.has(key) && !this.options.window?.has(key)) return false
    this.rt.overlap.rereadAfterPush(this.model, id)
    this.counts.deferred++
    return true
  }

  /** Whether the document belongs to this device's scope (always, when restoring any scope); counts it filtered if not. */
  private inScope(doc: Document): boolean {
    if (this.options.anyScope || this.binding.accepts(doc, this.ctx)) return true
    this.counts.filtered++
    return false
  }

  /**
   * The adapter's record for a document; undefined when the adapter filters
   * it out (counted) or it cannot be mapped to a record of the same id
   * (refused).
   */
  private map(doc: Document, hash: string): Row | undefined {
    const { adapter } = this.binding
    const id = doc._id
    let record: Row | null
    try {
      record = adapter.fromDocument(doc)
    } catch (error) {
      const reason = hasCode(error, ErrorCode.DOCUMENT_REJECTED)
        ? RejectReason.invalidDocument
        : RejectReason.adapterError
      this.refuse(id, hash, reason, error)
      return undefined
    }
    if (record === null) {
      this.counts.filtered++
      return undefined
    }
    let recordId: string
    try {
      recordId = adapter.documentId(record)
    } catch (error) {
      this.refuse(id, hash, RejectReason.invalidDocument, error)
      return undefined
    }
    if (recordId !== id) {
      this.refuse(
        id,
        hash,
        RejectReason.idMismatch,
        new Error(`documentId of the mapped record is ${JSON.stringify(recordId)}, not the document's _id.`),
      )
      return undefined
    }
    return record
  }

  /** Refused documents are reported now and kept (with the checkpoint past them) by the apply queue. */
  private refuse(id: string, hash: string, reason: string, error: unknown): void {
    this.rt.reject(this.model, id, 'remote', reason, error)
    if (this.options.tally) this.options.tally.rejected++
    const code = (error as { code?: unknown }).code
    this.rt.queue.put({
      model: this.model,
      id,
      kind: 'refuse',
      refusal: { reason: `${reason}: ${messageOf(error)}`, ...(typeof code === 'string' ? { code } : {}) },
      hash,
      doc: null,
      receivedAt: this.now,
    })
  }
}

type IntakeCounter = 'received' | 'echoSuppressed' | 'skippedUnchanged' | 'filtered' | 'deferred'

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
