import { createHash } from 'node:crypto'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { contentHash } from './content-hash.js'
import type { Document, JsonValue } from './document.js'
import { canonicalJson } from './json.js'

describe('contentHash', () => {
  // Stored formats: the bridge keeps `json` and `hash` in the app database, the Ditto change log keeps `hash`.
  it('gives the stored text and hash of a flat document', () => {
    const doc: Document = { title: 'a "quoted" line\n', _id: 'r7', note: null, count: -0.25, active: true }
    expect(contentHash(doc)).toEqual({
      json: '{"_id":"r7","active":true,"count":-0.25,"note":null,"title":"a \\"quoted\\" line\\n"}',
      hash: 'GBdBpcx86FPyeXs3CqdneNH7ewU',
    })
  })

  it('gives the stored text and hash of a nested document', () => {
    const doc: Document = { name: 'Zoë', _id: 'a1', o: { x: [1, null, true] }, n: 1.5 }
    expect(contentHash(doc)).toEqual({
      json: '{"_id":"a1","n":1.5,"name":"Zoë","o":{"x":[1,null,true]}}',
      hash: 'nYMVWtM8DAWF5bnPT0KxZB7c5Us',
    })
  })

  it('is SHA-1 (base64url) over canonical JSON for any document, whatever its key order', () => {
    const json = fc.jsonValue() as fc.Arbitrary<JsonValue>
    const doc = fc
      .tuple(
        fc.string(),
        fc.dictionary(
          fc.string().filter((k) => k !== '_id'),
          json,
        ),
      )
      .map(([id, fields]) => ({ ...fields, _id: id }) as Document)
    fc.assert(
      fc.property(doc, (d) => {
        const { json: text, hash } = contentHash(d)
        expect(text).toBe(canonicalJson(d))
        expect(hash).toBe(createHash('sha1').update(canonicalJson(d)).digest('base64url'))
        const reversed = Object.fromEntries(Object.entries(d).reverse()) as Document
        expect(contentHash(reversed)).toEqual({ json: text, hash })
      }),
    )
  })
})
