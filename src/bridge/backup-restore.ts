import { ErrorCode, ValidationError } from '../errors.js'
import type { Document, JsonValue } from '../mesh/document.js'
import { canonicalJson } from '../mesh/json.js'
import type { Filter } from '../mesh/query.js'
import type { AdapterBinding } from './adapter-binding.js'
import { docKey } from './doc-key.js'
import { ingest } from './remote-intake.js'
import type { SyncRuntime } from './runtime.js'

export interface RestoreOptions {
  /** Which documents of the model to restore. Default: the adapter's current scope. */
  filter?: Filter
  /** Follow the adapter's backup links (and, where a link cascades, theirs). Default true. */
  followLinks?: boolean
}

/** Outcome of a restore for one model. */
export interface RestoreCounts {
  /** Documents read from the mesh. */
  found: number
  /** Rows written. */
  applied: number
  /** Rows that already held the document's content. */
  unchanged: number
  /** Rows with local edits not yet sent, left alone (their merged result follows). */
  deferred: number
  /** Documents refused (malformed, or refused by the repository). */
  rejected: number
  /** Documents outside the adapter's scope, or skipped by the adapter. */
  filtered: number
}

export interface RestoreReport {
  /** Per model, in the order they were visited. */
  models: Record<string, RestoreCounts>
  /** Documents read in all. */
  documents: number
}

const PAGE = 500

interface Work {
  binding: AdapterBinding
  filter: Filter
  follow: boolean
}

/**
 * Restores a model's documents from the mesh into the repository, whatever
 * the sync state says (a backup pull), then follows its backup links: the
 * related documents are restored too, recursively where links cascade. Each
 * document and each link query is visited once, so cyclic links terminate.
 * Documents outside a receiving adapter's scope are not applied; for a model
 * this device only sends (a device that lost its database), the filter alone
 * decides.
 */
export async function restoreFromMesh(
  rt: SyncRuntime,
  model: string,
  options: RestoreOptions = {},
  onProgress?: (model: string, done: number) => void,
): Promise<RestoreReport> {
  const root = rt.bindings.get(model)
  if (!root) {
    throw new ValidationError(ErrorCode.INVALID_OPTIONS, `No adapter is registered for model ${model}.`, {
      details: { model },
    })
  }
  if (root.adapter.backup?.enabled === false) {
    throw new ValidationError(ErrorCode.INVALID_OPTIONS, `Backup restore is disabled for model ${model}.`, {
      details: { model },
    })
  }
  const report: RestoreReport = { models: {}, documents: 0 }
  const tallies = new Map<string, RestoreCounts>()
  const seenDocs = new Set<string>()
  const seenQueries = new Set<string>()
  const work: Work[] = [
    { binding: root, filter: options.filter ?? root.filter ?? {}, follow: options.followLinks ?? true },
  ]
  while (work.length > 0) {
    const { binding, filter, follow } = work.shift()!
    const queryKey = `${binding.model}\u0000${canonicalJson(filter as unknown as JsonValue)}`
    if (seenQueries.has(queryKey)) continue
    seenQueries.add(queryKey)
    let tally = tallies.get(binding.model)
    if (!tally) {
      tally = { found: 0, applied: 0, unchanged: 0, deferred: 0, rejected: 0, filtered: 0 }
      tallies.set(binding.model, tally)
    }
    const links = follow ? (binding.adapter.backup?.links ?? []) : []
    const linkKeys = links.map(() => new Set<string>())
    const linkRaw = links.map(() => new Map<string, JsonValue>())
    let last: string | null = null
    for (;;) {
      const page: Document[] = await binding.run(async () => {
        const f: Filter = last === null ? filter : { $and: [filter, { _id: { $gt: last } }] }
        const docs = await rt.mesh.find({ collection: binding.collection, filter: f, orderBy: '_id', limit: PAGE })
        const fresh = docs.filter((d) => !seenDocs.has(docKey(binding.model, d._id)))
        for (const d of fresh) seenDocs.add(docKey(binding.model, d._id))
        // A model this device only sends has no scope: restore brings back what the filter selects.
        await ingest(rt, binding, fresh, [], { force: true, tally: tally!, anyScope: !binding.receives })
        tally!.found += fresh.length
        links.forEach((link, i) => {
          for (const d of fresh) collect(d[link.field], linkKeys[i]!, linkRaw[i]!)
        })
        return docs
      })
      onProgress?.(binding.model, tally.found)
      if (page.length < PAGE) break
      last = page[page.length - 1]!._id
    }
    links.forEach((link, i) => {
      const target = rt.bindings.get(link.model)
      if (!target) {
        rt.fail(
          'restore',
          new ValidationError(
            ErrorCode.INVALID_ADAPTER,
            `Backup link ${binding.model}.${link.field} points to model ${link.model}, which has no registered adapter.`,
            { details: { model: binding.model, link } },
          ),
          binding.model,
        )
        return
      }
      const remoteKey = link.remoteKey ?? '_id'
      // Document ids are strings: a numeric key matches the id written as a string.
      const values = [...linkRaw[i]!.values()].map((v) => (remoteKey === '_id' ? String(v) : v))
      for (let at = 0; at < values.length; at += PAGE) {
        work.push({
          binding: target,
          filter: { [remoteKey]: { $in: values.slice(at, at + PAGE) } },
          follow: link.cascade ?? false,
        })
      }
    })
  }
  await rt.queue.idle()
  for (const [name, t] of tallies) {
    t.filtered = Math.max(0, t.found - t.applied - t.unchanged - t.deferred - t.rejected)
    report.models[name] = t
    report.documents += t.found
  }
  return report
}

/** Adds a link field's value(s) to a set, keyed by their JSON. */
function collect(value: JsonValue | undefined, keys: Set<string>, raw: Map<string, JsonValue>): void {
  if (value === undefined || value === null) return
  for (const v of Array.isArray(value) ? value : [value]) {
    if (v === null || typeof v === 'object') continue
    const k = JSON.stringify(v)
    if (!keys.has(k)) {
      keys.add(k)
      raw.set(k, v)
    }
  }
}
