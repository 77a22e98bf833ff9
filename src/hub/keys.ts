import type { FilterScalar } from '../mesh/query.js'

/**
 * Where a document lives on the hub: one key (one subject) per document,
 * `<prefix>.<collection>.<scope>.<id>`, so the bucket keeps exactly one
 * message per document and a till can ask for a collection, or one scope of
 * it, by subject filter.
 *
 * A token is kept as written when it is plain (`[A-Za-z0-9][A-Za-z0-9_-]*`,
 * at most 64 characters); anything else is `=` followed by its base64url
 * encoding, which no plain token starts with. `_` is the scope of a
 * collection mirrored whole.
 */
export const UNSCOPED = '_'

const PLAIN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/
const PREFIX_RE = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/

/** True for a subject prefix of plain tokens separated by dots (`chain.shop-a`). */
export function isPrefix(prefix: string): boolean {
  return prefix.length <= 128 && PREFIX_RE.test(prefix)
}

export function encodeToken(value: string): string {
  return PLAIN.test(value) ? value : `=${Buffer.from(value, 'utf8').toString('base64url')}`
}

export function decodeToken(token: string): string | undefined {
  if (!token.startsWith('=')) return PLAIN.test(token) ? token : undefined
  const text = Buffer.from(token.slice(1), 'base64url').toString('utf8')
  return encodeToken(text) === token ? text : undefined
}

/**
 * The scope token of a document: its values of the scope's fields (sorted
 * by field name). One string or number field gives a readable token
 * (`branch 7` is `7`); several fields or other values are encoded as JSON.
 */
export function scopeToken(fields: readonly string[], values: readonly (FilterScalar | undefined)[]): string {
  if (fields.length === 0) return UNSCOPED
  if (values.length === 1 && (typeof values[0] === 'string' || typeof values[0] === 'number')) {
    const text = String(values[0])
    if (PLAIN.test(text)) return text
  }
  return `=${Buffer.from(JSON.stringify(values.map((v) => v ?? null)), 'utf8').toString('base64url')}`
}

export function docKey(prefix: string, collection: string, scope: string, id: string): string {
  return `${prefix}.${collection}.${scope}.${encodeToken(id)}`
}

/** The collection and id of a key under `prefix`, or undefined when it is not a document key. */
export function parseKey(prefix: string, key: string): { collection: string; scope: string; id: string } | undefined {
  if (!key.startsWith(`${prefix}.`)) return undefined
  const parts = key.slice(prefix.length + 1).split('.')
  if (parts.length !== 3) return undefined
  const [collection, scope, token] = parts as [string, string, string]
  const id = decodeToken(token)
  return id === undefined ? undefined : { collection, scope, id }
}
