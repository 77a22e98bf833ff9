import type { Document, JsonObject, JsonValue } from '../mesh/document.js'
import { jsonEqual } from '../mesh/json.js'

/**
 * The fields of `doc` that differ from `base` (the content last exchanged
 * with the mesh), with `_id`: what a local edit changed. Sending only these
 * lets concurrent edits of other fields on other devices survive the merge.
 * Without a base, every field.
 */
export function changedFields(doc: Document, base: JsonObject | null): Document {
  if (base === null) return doc
  const out: Document = { _id: doc._id }
  for (const key of Object.keys(doc)) {
    if (key === '_id') continue
    const v = doc[key] as JsonValue
    if (!Object.hasOwn(base, key) || !jsonEqual(base[key] as JsonValue, v)) out[key] = v
  }
  return out
}
