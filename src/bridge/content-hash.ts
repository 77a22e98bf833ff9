import { hash } from 'node:crypto'
import type { Document, JsonObject, JsonValue } from '../mesh/document.js'
import { canonicalJson, jsonEqual } from '../mesh/json.js'

/** A document's canonical JSON (keys sorted) and its hash. */
export interface Hashed {
  hash: string
  json: string
}

/**
 * Hashes a document's content: equal documents (whatever their key order)
 * give equal hashes. SHA-1 over canonical JSON; collisions are not a concern
 * for change detection.
 */
export function contentHash(doc: Document): Hashed {
  const json = canonicalDocument(doc)
  return { hash: hash('sha1', json, 'base64url'), json }
}

interface Shape {
  order: string[]
  prefixes: string[]
}

// Documents of a collection share a few key sets: remember each one's sorted order.
const shapes = new Map<string, Shape>()

/** `canonicalJson(doc)`, faster for the common flat document. */
export function canonicalDocument(doc: Document): string {
  const keys = Object.keys(doc)
  const signature = keys.join('\u0000')
  let shape = shapes.get(signature)
  if (!shape) {
    const order = [...keys].sort()
    shape = { order, prefixes: order.map((k, i) => `${i === 0 ? '{' : ','}${JSON.stringify(k)}:`) }
    if (shapes.size >= 1024) shapes.clear()
    shapes.set(signature, shape)
  }
  const { order, prefixes } = shape
  let out = ''
  for (let i = 0; i < order.length; i++) {
    const v = doc[order[i]!]
    if (typeof v === 'string') out += prefixes[i] + JSON.stringify(v)
    else if (v === null || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))) {
      out += prefixes[i] + String(v)
    } else return canonicalJson(doc)
  }
  return order.length === 0 ? '{}' : `${out}}`
}

/** A plain copy of a mapped document: `_id` set to `id`, undefined fields dropped. */
export function normaliseDocument(doc: Document, id: string): Document {
  const out: Document = { _id: id }
  for (const key of Object.keys(doc)) {
    if (key === '_id') continue
    const v = doc[key]
    if (v !== undefined) out[key] = v
  }
  return out
}

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
