import { describe, expect, it } from 'vitest'
import { hasCode } from '../errors.js'
import type { Document } from './document.js'
import { copyFields, mappedDocument, normaliseDocument } from './validate.js'

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (e) {
    return hasCode(e, 'INVALID_DOCUMENT') || hasCode(e, 'INVALID_ID') ? (e as { code: string }).code : 'OTHER'
  }
  return undefined
}

describe('document normalisation', () => {
  it('copies every field but _id and undefined ones, after the check saw it', () => {
    const seen: string[] = []
    const out = copyFields({ _id: 'x', a: 1, b: undefined, c: null, d: { e: undefined } }, {}, (key) => {
      seen.push(key)
    })
    expect(out).toEqual({ a: 1, c: null, d: { e: undefined } })
    expect(Object.keys(out)).toEqual(['a', 'c', 'd'])
    expect(seen).toEqual(['a', 'c', 'd'])
  })

  it('passes on the error of a check that refuses a field', () => {
    expect(() =>
      copyFields({ a: 1, b: 2 }, {}, (key) => {
        if (key === 'b') throw new Error('no b')
      }),
    ).toThrow('no b')
  })

  it('gives a mapped document the given id, first, without undefined fields and unchecked', () => {
    const when = new Date(0)
    const doc = { name: 'n', _id: 'ignored', gone: undefined, when } as unknown as Document
    const out = mappedDocument(doc, '42')
    expect(out).toEqual({ _id: '42', name: 'n', when })
    expect(Object.keys(out)).toEqual(['_id', 'name', 'when'])
    expect(doc._id).toBe('ignored')
  })

  it('splits a checked input document into its id and fields', () => {
    expect(normaliseDocument({ _id: 7, a: 'x', skip: undefined, o: { p: [1] } })).toEqual({
      id: '7',
      fields: { a: 'x', o: { p: [1] } },
    })
  })

  it('refuses what the mesh cannot store, with the document code', () => {
    expect(codeOf(() => normaliseDocument({ _id: 'a', when: new Date(0) }))).toBe('INVALID_DOCUMENT')
    expect(codeOf(() => normaliseDocument({ _id: 'a', n: Number.NaN }))).toBe('INVALID_DOCUMENT')
    expect(codeOf(() => normaliseDocument([]))).toBe('INVALID_DOCUMENT')
    expect(codeOf(() => normaliseDocument({ a: 1 }))).toBe('INVALID_ID')
  })
})
