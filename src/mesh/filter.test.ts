import { describe, expect, it } from 'vitest'
import { hasCode } from '../errors.js'
import type { Document } from './document.js'
import { compileQuery, compileScope } from './filter.js'
import { applyQueryInMemory, compareStrings, compareValues, matches } from './match.js'
import type { Filter, Query } from './query.js'

const docs: Document[] = [
  { _id: 'a', n: 1, s: 'x', b: true, z: null, o: { city: 'Oslo' }, arr: [1, 2] },
  { _id: 'b', n: 2.5, s: 'y', b: false, o: { city: 'Rome' } },
  { _id: 'c', n: '3', s: 'x' },
  { _id: 'd', b: true, n: true },
]

function ids(filter: Filter): string[] {
  const f = compileScope({ collection: 'c', filter }).filter
  return docs.filter((d) => matches(f, d)).map((d) => d._id)
}

function code(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (e) {
    return hasCode(e, 'INVALID_QUERY') || hasCode(e, 'INVALID_COLLECTION') ? (e as { code: string }).code : 'OTHER'
  }
  return undefined
}

describe('filter semantics', () => {
  it('matches equality by JSON type and structure', () => {
    expect(ids({ s: 'x' })).toEqual(['a', 'c'])
    expect(ids({ n: 1 })).toEqual(['a'])
    expect(ids({ n: true })).toEqual(['d'])
    expect(ids({ o: { city: 'Rome' } })).toEqual(['b'])
    expect(ids({ arr: [1, 2] })).toEqual(['a'])
    expect(ids({ arr: [2, 1] })).toEqual([])
  })

  it('treats null as an explicit value and $ne/$nin as matching missing fields', () => {
    expect(ids({ z: null })).toEqual(['a'])
    expect(ids({ z: { $ne: null } })).toEqual(['b', 'c', 'd'])
    expect(ids({ s: { $ne: 'x' } })).toEqual(['b', 'd'])
    expect(ids({ s: { $nin: ['x', 'y'] } })).toEqual(['d'])
    expect(ids({ z: { $exists: true } })).toEqual(['a'])
    expect(ids({ z: { $exists: false } })).toEqual(['b', 'c', 'd'])
  })

  it('compares only values of the same type', () => {
    expect(ids({ n: { $gt: 0 } })).toEqual(['a', 'b'])
    expect(ids({ n: { $gte: '0' } })).toEqual(['c'])
    expect(ids({ b: { $gt: false } })).toEqual(['a', 'd'])
    expect(ids({ n: { $gt: 1, $lte: 2.5 } })).toEqual(['b'])
    expect(ids({ z: { $gte: null } })).toEqual(['a'])
    expect(ids({ z: { $gt: null } })).toEqual([])
  })

  it('reaches nested fields and combines with $and, $or, $not', () => {
    expect(ids({ 'o.city': 'Oslo' })).toEqual(['a'])
    expect(ids({ 'arr.0': 1 })).toEqual([])
    expect(ids({ $or: [{ n: 1 }, { s: 'y' }] })).toEqual(['a', 'b'])
    expect(ids({ $and: [{ s: 'x' }, { n: { $in: [1, '3'] } }] })).toEqual(['a', 'c'])
    expect(ids({ $not: { s: 'x' } })).toEqual(['b', 'd'])
    expect(ids({ n: { $not: { $gt: 1 } } })).toEqual(['a', 'c', 'd'])
    expect(ids({ $or: [] })).toEqual([])
    expect(ids({ $and: [] })).toEqual(['a', 'b', 'c', 'd'])
    expect(ids({ _id: { $in: ['b', 'd'] } })).toEqual(['b', 'd'])
  })

  it('sorts across types, then by _id, and pages', () => {
    const q = compileQuery({ collection: 'c', orderBy: ['n'] })
    expect(applyQueryInMemory(q, docs).map((d) => d._id)).toEqual(['d', 'a', 'b', 'c'])
    const desc = compileQuery({ collection: 'c', orderBy: [{ field: 's', direction: 'desc' }], limit: 2, offset: 1 })
    expect(applyQueryInMemory(desc, docs).map((d) => d._id)).toEqual(['a', 'c'])
  })

  it('orders strings by code point, like SQLite', () => {
    expect(compareStrings('\u{1F600}', '\uFFFD')).toBeGreaterThan(0)
    expect('\u{1F600}' < '\uFFFD').toBe(true)
    expect(compareStrings('ab', 'abc')).toBeLessThan(0)
    expect(compareValues(null, false)).toBeLessThan(0)
    expect(compareValues(true, 0)).toBeLessThan(0)
    expect(compareValues(99, '1')).toBeLessThan(0)
    expect(compareValues('z', [])).toBeLessThan(0)
  })
})

describe('query validation', () => {
  const bad: [string, unknown][] = [
    ['unknown operator', { collection: 'c', filter: { a: { $regex: 'x' } } }],
    ['unknown combinator', { collection: 'c', filter: { $nor: [] } }],
    ['$in not an array', { collection: 'c', filter: { a: { $in: 'x' } } }],
    ['$exists not boolean', { collection: 'c', filter: { a: { $exists: 1 } } }],
    ['$gt with an object', { collection: 'c', filter: { a: { $gt: {} } } }],
    ['$gt with NaN', { collection: 'c', filter: { a: { $gt: Number.NaN } } }],
    ['mixed operators and fields', { collection: 'c', filter: { a: { $gt: 1, b: 2 } } }],
    ['$and not an array', { collection: 'c', filter: { $and: { a: 1 } } }],
    ['filter not an object', { collection: 'c', filter: [] }],
    ['field with $', { collection: 'c', filter: { 'a.$b': 1 } }],
    ['__proto__ field', { collection: 'c', filter: { __proto__x: 1, ['__proto__']: 1 } }],
    ['empty path segment', { collection: 'c', filter: { 'a..b': 1 } }],
    ['negative limit', { collection: 'c', limit: -1 }],
    ['zero limit', { collection: 'c', limit: 0 }],
    ['fractional offset', { collection: 'c', offset: 1.5 }],
    ['bad direction', { collection: 'c', orderBy: { field: 'a', direction: 'up' } }],
    ['unknown key', { collection: 'c', where: {} }],
    ['function value', { collection: 'c', filter: { a: () => 1 } }],
    ['bigint value', { collection: 'c', filter: { a: 1n } }],
    ['too deep', { collection: 'c', filter: nest(40) }],
  ]
  it.each(bad)('rejects %s with INVALID_QUERY', (_name, query) => {
    expect(code(() => compileQuery(query as Query))).toBe('INVALID_QUERY')
  })

  it('rejects bad collection names', () => {
    for (const collection of ['a-b', '1x', 'x;drop', '', 'a"b']) {
      expect(code(() => compileQuery({ collection }))).toBe('INVALID_COLLECTION')
    }
  })

  it('normalises negations to not', () => {
    expect(compileScope({ collection: 'c', filter: { a: { $ne: 1 } } }).filter).toEqual({
      kind: 'not',
      item: { kind: 'eq', path: ['a'], value: 1 },
    })
  })
})

function nest(depth: number): Filter {
  let f: Filter = { a: 1 }
  for (let i = 0; i < depth; i++) f = { $not: f }
  return f
}
