import type { Document } from './document.js'
import { canonicalJson } from './json.js'
import type { RemovedDocument } from './mesh-store.js'

/** One document of a query result, with its canonical JSON (computed once, compared on the next result). */
export interface IndexedDocument {
  doc: Document
  json: string
}

/** A query result by document id, in result order. */
export type ResultIndex = ReadonlyMap<string, IndexedDocument>

/** What changed between two results of one query, as observers receive it. */
export interface ResultDiff {
  /** In the new result, not in the previous one (new result order). */
  inserted: Document[]
  /** In both, with different content (new result order). */
  updated: Document[]
  /** In the previous result, not in the new one (previous result order). */
  removed: RemovedDocument[]
}

/** Indexes a query result, to diff the next result against. */
export function indexResult(docs: readonly Document[]): ResultIndex {
  const index = new Map<string, IndexedDocument>()
  for (const doc of docs) index.set(doc._id, { doc, json: canonicalJson(doc) })
  return index
}

/**
 * The difference between the previous result of a query and its new result
 * `docs`, and the new result's index for the next call. Content is compared
 * as canonical JSON, so key order does not make an update.
 */
export function diffResults(previous: ResultIndex, docs: readonly Document[]): { diff: ResultDiff; next: ResultIndex } {
  const next = new Map<string, IndexedDocument>()
  const inserted: Document[] = []
  const updated: Document[] = []
  for (const doc of docs) {
    const json = canonicalJson(doc)
    next.set(doc._id, { doc, json })
    const before = previous.get(doc._id)
    if (!before) inserted.push(doc)
    else if (before.json !== json) updated.push(doc)
  }
  const removed: RemovedDocument[] = []
  for (const [id, before] of previous) if (!next.has(id)) removed.push({ _id: id, previous: before.doc })
  return { diff: { inserted, updated, removed }, next }
}

/** True when the diff holds no change (observers are not called for it). */
export function isEmptyDiff(diff: ResultDiff): boolean {
  return diff.inserted.length + diff.updated.length + diff.removed.length === 0
}
