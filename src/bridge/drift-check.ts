import { contentHash } from '../mesh/content-hash.js'
import type { Document } from '../mesh/document.js'
import type { Filter } from '../mesh/query.js'
import { DELETED_HASH, type DocSyncState } from '../repository/repository.js'
import { delay } from '../util/delay.js'
import type { AdapterBinding } from './adapter-binding.js'
import { docKey } from './doc-key.js'
import type { DriftedDocument, DriftKind, VerifyOptions, VerifyReport } from './drift-report.js'
import type { SyncRuntime } from './runtime.js'

const PAGE = 2000
/** Without pages of states: models with more exchanged states than this skip the removal check. */
const STATE_LIMIT = 250_000
/** Pause before the second look, so that what was in flight at the first one lands. */
const SETTLE_MS = 250

/** A document out of step at the first look: how, and the mesh content's hash then. */
interface Candidate {
  kind: DriftKind
  meshHash: string | undefined
}

/**
 * Compares, for every receiving model, what the device last exchanged (its
 * sync state in the database) with what the mesh holds now, and applies
 * again any document found out of step twice, a pause apart, with the mesh
 * holding the same content both times (a document changing meanwhile is
 * being delivered, and is left to a later verification). A document
 * being pushed, queued for writing, parked or refused is left out: it is
 * out of step on purpose and settles by itself.
 *
 * This is the safety net under change detection: whatever went wrong once
 * (a crash between two steps, a race not foreseen), the device ends up with
 * the mesh's content, and the report names what it found.
 */
export async function verifyAgainstMesh(rt: SyncRuntime, options: VerifyOptions = {}): Promise<VerifyReport> {
  const t0 = performance.now()
  const report: VerifyReport = { checked: 0, drifted: [], repaired: options.repair !== false, durationMs: 0 }
  for (const binding of rt.bindings.values()) {
    if (!binding.receives || binding.cursor === undefined) continue
    if (options.model !== undefined && binding.model !== options.model) continue
    const first = await firstLook(rt, binding)
    report.checked += first.checked
    if (first.candidates.size === 0) continue
    await rt.queue.idle()
    await delay(SETTLE_MS)
    const confirmed = await secondLook(rt, binding, first.candidates)
    if (confirmed.length === 0) continue
    report.drifted.push(...confirmed)
    if (report.repaired) {
      const ids = confirmed.map((d) => d.id)
      // The in-memory states are set to the database's before the documents are read again.
      rt.states.reload(binding.model, await rt.repository.syncStates(binding.model, ids, { documents: false }), ids)
      rt.retry(binding.model, ids)
    }
  }
  if (report.repaired && report.drifted.length > 0) await rt.queue.idle()
  report.durationMs = performance.now() - t0
  return report
}

/** Documents of a model whose exchanged state differs from the mesh at a first look. */
async function firstLook(
  rt: SyncRuntime,
  binding: AdapterBinding,
): Promise<{ checked: number; candidates: Map<string, Candidate> }> {
  const candidates = new Map<string, Candidate>()
  const kept = await keptIds(rt, binding.model)
  // Without pages of states, every state is read at once, with the ids the mesh holds beside them.
  const all = rt.repository.syncStatePage ? undefined : await rt.repository.allSyncStates(binding.model, STATE_LIMIT)
  const seen = all ? new Set<string>() : undefined
  let checked = 0
  let last: string | null = null
  for (;;) {
    const page: Document[] = await binding.run(async () => {
      const f: Filter = last === null ? {} : { _id: { $gt: last } }
      const docs = await rt.mesh.find({ collection: binding.collection, filter: f, orderBy: '_id', limit: PAGE })
      const states = await rt.repository.syncStates(
        binding.model,
        docs.map((d) => d._id),
        { documents: false },
      )
      for (const doc of docs) {
        seen?.add(doc._id)
        checked++
        const kind = judge(rt, binding, doc, states.get(doc._id), kept)
        if (kind) candidates.set(doc._id, { kind, meshHash: contentHash(doc).hash })
      }
      return docs
    })
    if (page.length < PAGE) break
    last = page[page.length - 1]!._id
  }
  if (all && seen) {
    for (const [id, state] of all) {
      if (seen.has(id) || state.hash === DELETED_HASH || kept.has(id) || busy(rt, binding.model, id)) continue
      candidates.set(id, { kind: 'removed', meshHash: undefined })
    }
  } else await removedFromMesh(rt, binding, kept, candidates)
  return { checked, candidates }
}

/**
 * Adds the documents the device holds as exchanged and the mesh no longer
 * has, going through the sync states a page at a time (memory stays bounded
 * however many documents a model holds).
 */
async function removedFromMesh(
  rt: SyncRuntime,
  binding: AdapterBinding,
  kept: ReadonlySet<string>,
  candidates: Map<string, Candidate>,
): Promise<void> {
  let after: string | null = null
  for (;;) {
    const page = await binding.run(async () => {
      const states = await rt.repository.syncStatePage!(binding.model, { after, limit: PAGE })
      const live = states.filter(
        (s) => s.hash !== DELETED_HASH && !kept.has(s.id) && !candidates.has(s.id) && !busy(rt, binding.model, s.id),
      )
      if (live.length > 0) {
        const ids = live.map((s) => s.id)
        const held = new Set(
          (await rt.mesh.find({ collection: binding.collection, filter: { _id: { $in: ids } } })).map((d) => d._id),
        )
        for (const id of ids) if (!held.has(id)) candidates.set(id, { kind: 'removed', meshHash: undefined })
      }
      return states
    })
    if (page.length < PAGE) return
    after = page[page.length - 1]!.id
  }
}

/** The candidates still out of step, read again from the mesh and the database. */
async function secondLook(
  rt: SyncRuntime,
  binding: AdapterBinding,
  candidates: Map<string, Candidate>,
): Promise<DriftedDocument[]> {
  const out: DriftedDocument[] = []
  const ids = [...candidates.keys()]
  // Read again after the pause (what was parked meanwhile is left out), once for all the pages.
  let kept: ReadonlySet<string> | undefined
  for (let i = 0; i < ids.length; i += PAGE) {
    const part = ids.slice(i, i + PAGE)
    await binding.run(async () => {
      kept ??= await keptIds(rt, binding.model)
      const parked = kept
      const docs = new Map(
        (await rt.mesh.find({ collection: binding.collection, filter: { _id: { $in: part } } })).map((d) => [d._id, d]),
      )
      const states = await rt.repository.syncStates(binding.model, part, { documents: false })
      const cached = await rt.states.lookup(binding.model, part)
      for (const id of part) {
        const doc = docs.get(id)
        const state = states.get(id)
        let kind: DriftKind | undefined
        if (doc) kind = judge(rt, binding, doc, state, parked)
        else if (state && state.hash !== DELETED_HASH && !parked.has(id) && !busy(rt, binding.model, id))
          kind = 'removed'
        const meshHash = doc ? contentHash(doc).hash : undefined
        const first = candidates.get(id)!
        if (kind === undefined || kind !== first.kind || meshHash !== first.meshHash) continue
        out.push({
          model: binding.model,
          id,
          kind,
          storedHash: state?.hash,
          meshHash,
          cacheDisagreed: cached.get(id)?.hash !== state?.hash,
        })
      }
    })
  }
  return out
}

/** Ids of a model's parked and refused documents: out of step on purpose. */
async function keptIds(rt: SyncRuntime, model: string): Promise<Set<string>> {
  return new Set((await rt.repository.parked({ model, limit: 100_000 })).map((k) => k.id))
}

/** Whether a document is being pushed or written: out of step for now, on purpose. */
function busy(rt: SyncRuntime, model: string, id: string): boolean {
  return rt.pushes.has(docKey(model, id)) || (rt.queue.depth > 0 && rt.queue.find(model, id) !== undefined)
}

/** How a mesh document and its exchanged state disagree, if they do and it matters. */
function judge(
  rt: SyncRuntime,
  binding: AdapterBinding,
  doc: Document,
  state: DocSyncState | undefined,
  kept: ReadonlySet<string>,
): DriftKind | undefined {
  const id = doc._id
  if (kept.has(id) || busy(rt, binding.model, id)) return undefined
  if (state !== undefined && state.hash === contentHash(doc).hash) return undefined
  // Not this device's, or not a row for it: nothing to have applied.
  if (!binding.accepts(doc, rt.context())) {
    // Left the scope: the row is to be gone, which the exchanged removal says.
    return undefined
  }
  if (state === undefined || state.hash === DELETED_HASH) {
    try {
      if (binding.adapter.fromDocument(doc) === null) return undefined
    } catch {
      // A document the adapter refuses is kept as refused when it is applied; none is kept here.
    }
    return 'missing'
  }
  return 'stale'
}
