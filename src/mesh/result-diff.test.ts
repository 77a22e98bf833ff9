import { describe, expect, it } from 'vitest'
import type { Document } from './document.js'
import { diffResults, indexResult, isEmptyDiff } from './result-diff.js'

describe('diffResults', () => {
  it('reports inserted, updated and removed documents between two results', () => {
    const before: Document[] = [
      { _id: 'a', n: 1 },
      { _id: 'b', n: 2 },
      { _id: 'c', n: 3 },
    ]
    const after: Document[] = [
      { _id: 'd', n: 4 },
      { _id: 'b', n: 20 },
      { _id: 'a', n: 1 },
    ]
    const { diff } = diffResults(indexResult(before), after)
    expect(diff.inserted).toEqual([{ _id: 'd', n: 4 }])
    expect(diff.updated).toEqual([{ _id: 'b', n: 20 }])
    expect(diff.removed).toEqual([{ _id: 'c', previous: { _id: 'c', n: 3 } }])
    expect(isEmptyDiff(diff)).toBe(false)
  })

  it('does not count a different key order, or a moved document, as an update', () => {
    const { diff } = diffResults(indexResult([{ _id: 'a', x: 1, o: { p: 1, q: 2 } }, { _id: 'b' }]), [
      { _id: 'b' },
      { o: { q: 2, p: 1 }, x: 1, _id: 'a' },
    ])
    expect(diff).toEqual({ inserted: [], updated: [], removed: [] })
    expect(isEmptyDiff(diff)).toBe(true)
  })

  it('sees a changed nested value as an update', () => {
    const { diff } = diffResults(indexResult([{ _id: 'a', o: { tags: ['x'] } }]), [
      { _id: 'a', o: { tags: ['x', 'y'] } },
    ])
    expect(diff.updated).toEqual([{ _id: 'a', o: { tags: ['x', 'y'] } }])
  })

  it('keeps result order: new order for inserted and updated, previous order for removed', () => {
    const { diff } = diffResults(indexResult([{ _id: 'r2' }, { _id: 'r1' }, { _id: 'u', v: 1 }]), [
      { _id: 'i2' },
      { _id: 'u', v: 2 },
      { _id: 'i1' },
    ])
    expect(diff.inserted.map((d) => d._id)).toEqual(['i2', 'i1'])
    expect(diff.removed.map((d) => d._id)).toEqual(['r2', 'r1'])
  })

  it('returns the index of the new result, so a chain of results diffs step by step', () => {
    const first = diffResults(indexResult([]), [{ _id: 'a', n: 1 }])
    expect(first.diff.inserted).toEqual([{ _id: 'a', n: 1 }])
    const second = diffResults(first.next, [{ _id: 'a', n: 2 }])
    expect(second.diff).toEqual({ inserted: [], updated: [{ _id: 'a', n: 2 }], removed: [] })
    const third = diffResults(second.next, [])
    expect(third.diff.removed).toEqual([{ _id: 'a', previous: { _id: 'a', n: 2 } }])
    expect(third.next.size).toBe(0)
  })
})
