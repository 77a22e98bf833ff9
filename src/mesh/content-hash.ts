import { hash } from 'node:crypto'
import type { Document } from './document.js'
import { canonicalJson } from './json.js'

/** A document's canonical JSON (keys sorted) and its hash. */
export interface Hashed {
  hash: string
  json: string
}

/**
 * Hashes a document's content: equal documents (whatever their key order)
 * give equal hashes. SHA-1 over canonical JSON (base64url); collisions are
 * not a concern for change detection.
 *
 * The bridge stores both `json` and `hash` in the app database and the Ditto
 * change log stores `hash`: the text and the hash must stay byte-for-byte the
 * same across releases, or every stored document would look changed.
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
