import { describe, expect } from 'vitest'
import type { Query } from '../query.js'
import { ids } from './expectations.js'
import type { ConformanceSuite } from './suite.js'

/** Queries: filters, dotted paths, operators, ordering across types, paging, count, indexes. */
export function queriesContract(suite: ConformanceSuite): void {
  const { test } = suite

  describe('queries', () => {
    const seed = () =>
      suite.mesh.upsert('q', [
        { _id: 'a', n: 1, s: 'x', b: true, z: null, o: { city: 'Oslo', zip: '0150' }, tags: ['t1'] },
        { _id: 'b', n: 2.5, s: 'y', b: false, o: { city: 'Rome' } },
        { _id: 'c', n: '3', s: 'x', o: { city: 'Oslo', geo: { lat: 59 } } },
        { _id: 'd', n: true, b: true },
        { _id: 'e', n: -4, s: 'é', o: 'flat' },
      ])
    const find = async (q: Omit<Query, 'collection'>) => ids(await suite.mesh.find({ collection: 'q', ...q }))

    test('equality, null and structural values', async () => {
      await seed()
      expect(await find({ filter: { s: 'x' } })).toEqual(['a', 'c'])
      expect(await find({ filter: { n: 1 } })).toEqual(['a'])
      expect(await find({ filter: { n: 3 } })).toEqual([])
      expect(await find({ filter: { n: '3' } })).toEqual(['c'])
      expect(await find({ filter: { n: true } })).toEqual(['d'])
      expect(await find({ filter: { b: false } })).toEqual(['b'])
      expect(await find({ filter: { z: null } })).toEqual(['a'])
      expect(await find({ filter: { o: { zip: '0150', city: 'Oslo' } } })).toEqual(['a'])
      expect(await find({ filter: { o: { city: 'Oslo' } } })).toEqual([])
      expect(await find({ filter: { tags: ['t1'] } })).toEqual(['a'])
      expect(await find({ filter: { tags: 't1' } })).toEqual([])
      expect(await find({ filter: { _id: 'c' } })).toEqual(['c'])
      expect(await find({ filter: { s: 'x', b: true } })).toEqual(['a'])
      expect(await find({ filter: {} })).toEqual(['a', 'b', 'c', 'd', 'e'])
    })

    test('dotted paths reach into nested objects', async () => {
      await seed()
      expect(await find({ filter: { 'o.city': 'Oslo' } })).toEqual(['a', 'c'])
      expect(await find({ filter: { 'o.geo.lat': { $gte: 59 } } })).toEqual(['c'])
      expect(await find({ filter: { 'o.city': { $exists: true } } })).toEqual(['a', 'b', 'c'])
      expect(await find({ filter: { 'o.city': { $exists: false } } })).toEqual(['d', 'e'])
      expect(await find({ filter: { 'o.city': { $ne: 'Oslo' } } })).toEqual(['b', 'd', 'e'])
      expect(await find({ filter: { 'o.city': { $in: ['Rome', 'Paris'] } } })).toEqual(['b'])
      expect(await find({ orderBy: { field: 'o.city', direction: 'desc' } })).toEqual(['b', 'a', 'c', 'd', 'e'])
    })

    test('comparison operators match values of the same type only', async () => {
      await seed()
      expect(await find({ filter: { n: { $gt: 0 } } })).toEqual(['a', 'b'])
      expect(await find({ filter: { n: { $gte: -4, $lt: 2 } } })).toEqual(['a', 'e'])
      expect(await find({ filter: { n: { $lte: 2.5 } } })).toEqual(['a', 'b', 'e'])
      expect(await find({ filter: { n: { $lt: -4 } } })).toEqual([])
      expect(await find({ filter: { n: { $lte: '9' } } })).toEqual(['c'])
      expect(await find({ filter: { b: { $gt: false } } })).toEqual(['a', 'd'])
      expect(await find({ filter: { b: { $lt: true } } })).toEqual(['b'])
      expect(await find({ filter: { s: { $gt: 'x' } } })).toEqual(['b', 'e'])
      expect(await find({ filter: { s: { $gte: 'x', $lt: 'y' } } })).toEqual(['a', 'c'])
      expect(await find({ filter: { _id: { $gt: 'c' } } })).toEqual(['d', 'e'])
    })

    test('$eq $ne $in $nin $exists', async () => {
      await seed()
      expect(await find({ filter: { s: { $eq: 'y' } } })).toEqual(['b'])
      expect(await find({ filter: { o: { $eq: { city: 'Rome' } } } })).toEqual(['b'])
      expect(await find({ filter: { s: { $ne: 'x' } } })).toEqual(['b', 'd', 'e'])
      expect(await find({ filter: { z: { $ne: null } } })).toEqual(['b', 'c', 'd', 'e'])
      expect(await find({ filter: { n: { $in: [1, '3', true] } } })).toEqual(['a', 'c', 'd'])
      expect(await find({ filter: { n: { $in: [] } } })).toEqual([])
      expect(await find({ filter: { z: { $in: [null] } } })).toEqual(['a'])
      expect(await find({ filter: { tags: { $in: [['t1'], 'x'] } } })).toEqual(['a'])
      expect(await find({ filter: { _id: { $in: ['e', 'b', 'nope'] } } })).toEqual(['b', 'e'])
      expect(await find({ filter: { s: { $nin: ['x', 'y'] } } })).toEqual(['d', 'e'])
      expect(await find({ filter: { n: { $nin: [] } } })).toEqual(['a', 'b', 'c', 'd', 'e'])
      expect(await find({ filter: { z: { $exists: true } } })).toEqual(['a'])
      expect(await find({ filter: { s: { $exists: false } } })).toEqual(['d'])
    })

    test('$and $or $not', async () => {
      await seed()
      expect(await find({ filter: { $or: [{ s: 'y' }, { b: true }] } })).toEqual(['a', 'b', 'd'])
      expect(await find({ filter: { $and: [{ s: 'x' }, { b: true }] } })).toEqual(['a'])
      expect(await find({ filter: { $not: { s: 'x' } } })).toEqual(['b', 'd', 'e'])
      expect(await find({ filter: { n: { $not: { $gt: 0 } } } })).toEqual(['c', 'd', 'e'])
      expect(await find({ filter: { $not: { $or: [{ s: 'x' }, { n: { $lt: 0 } }] } } })).toEqual(['b', 'd'])
      expect(
        await find({ filter: { s: 'x', $or: [{ 'o.geo.lat': 59 }, { tags: { $exists: true } }], n: { $ne: 1 } } }),
      ).toEqual(['c'])
    })

    test('orderBy sorts by several keys, ascending or descending, ties by _id', async (mesh) => {
      await mesh.upsert('r', [
        { _id: 'r5', g: 1, v: 'b' },
        { _id: 'r1', g: 2, v: 'a' },
        { _id: 'r4', g: 1, v: 'a' },
        { _id: 'r2', g: 1, v: 'b' },
        { _id: 'r3', g: 2, v: 'a' },
      ])
      const order = async (orderBy: Query['orderBy']) => ids(await mesh.find({ collection: 'r', orderBy }))
      expect(await order('g')).toEqual(['r2', 'r4', 'r5', 'r1', 'r3'])
      expect(await order({ field: 'g', direction: 'desc' })).toEqual(['r1', 'r3', 'r2', 'r4', 'r5'])
      expect(await order(['g', 'v'])).toEqual(['r4', 'r2', 'r5', 'r1', 'r3'])
      expect(await order(['g', { field: 'v', direction: 'desc' }])).toEqual(['r2', 'r5', 'r4', 'r1', 'r3'])
      expect(
        await order([
          { field: 'v', direction: 'desc' },
          { field: 'g', direction: 'asc' },
        ]),
      ).toEqual(['r2', 'r5', 'r4', 'r1', 'r3'])
      expect(await order({ field: '_id', direction: 'desc' })).toEqual(['r5', 'r4', 'r3', 'r2', 'r1'])
      expect(await order(undefined)).toEqual(['r1', 'r2', 'r3', 'r4', 'r5'])
    })

    test('sorting across types: missing/null < false < true < numbers < strings < arrays/objects', async (mesh) => {
      await mesh.upsert('t', [
        { _id: 'k00' },
        { _id: 'k01', v: null },
        { _id: 'k02', v: 'b' },
        { _id: 'k03', v: 10 },
        { _id: 'k04', v: true },
        { _id: 'k05', v: [1] },
        { _id: 'k06', v: -1.5 },
        { _id: 'k07', v: false },
        { _id: 'k08', v: 'a' },
        { _id: 'k09', v: 2 },
        { _id: 'k10', v: { a: 1 } },
      ])
      const asc = ids(await mesh.find({ collection: 't', orderBy: 'v' }))
      expect(asc.slice(0, 9)).toEqual(['k00', 'k01', 'k07', 'k04', 'k06', 'k09', 'k03', 'k08', 'k02'])
      expect(asc.slice(9).sort()).toEqual(['k05', 'k10'])
      const desc = ids(await mesh.find({ collection: 't', orderBy: { field: 'v', direction: 'desc' } }))
      expect(desc.slice(0, 2).sort()).toEqual(['k05', 'k10'])
      expect(desc.slice(2)).toEqual(['k02', 'k08', 'k03', 'k09', 'k06', 'k04', 'k07', 'k00', 'k01'])
    })

    test('limit and offset page through the sorted result', async () => {
      await seed()
      expect(await find({ orderBy: 'n' })).toEqual(['d', 'e', 'a', 'b', 'c'])
      expect(await find({ orderBy: 'n', limit: 2 })).toEqual(['d', 'e'])
      expect(await find({ orderBy: 'n', limit: 2, offset: 2 })).toEqual(['a', 'b'])
      expect(await find({ orderBy: 'n', limit: 2, offset: 4 })).toEqual(['c'])
      expect(await find({ orderBy: 'n', offset: 3 })).toEqual(['b', 'c'])
      expect(await find({ orderBy: 'n', offset: 9 })).toEqual([])
      expect(await find({ orderBy: 'n', limit: 100 })).toEqual(['d', 'e', 'a', 'b', 'c'])
      expect(await find({ filter: { s: 'x' }, limit: 1 })).toEqual(['a'])
      expect(await find({ filter: { o: { $exists: true } }, orderBy: 'o.city', limit: 2, offset: 1 })).toEqual([
        'a',
        'c',
      ])
    })

    test('count matches find', async (mesh) => {
      await seed()
      expect(await mesh.count({ collection: 'q' })).toBe(5)
      expect(await mesh.count({ collection: 'q', filter: { s: 'x' } })).toBe(2)
      expect(await mesh.count({ collection: 'q', filter: { s: { $ne: 'x' } } })).toBe(3)
      expect(await mesh.count({ collection: 'q', filter: { o: { $eq: { city: 'Rome' } } } })).toBe(1)
      expect(await mesh.count({ collection: 'empty' })).toBe(0)
      await mesh.remove('q', ['a'])
      expect(await mesh.count({ collection: 'q', filter: { s: 'x' } })).toBe(1)
    })

    test('createIndex is idempotent and does not change results', async (mesh) => {
      await seed()
      const queries: Omit<Query, 'collection'>[] = [
        { filter: { s: { $in: ['x', 'é'] } }, orderBy: 's' },
        { filter: { n: { $gte: 0 } }, orderBy: { field: 'n', direction: 'desc' } },
        { filter: { 'o.city': 'Oslo' } },
        { filter: { s: { $ne: 'x' } } },
        { orderBy: 'n', limit: 2, offset: 1 },
        { orderBy: 'o.city' },
      ]
      const before = await Promise.all(queries.map(find))
      await mesh.createIndex('q', 's')
      await mesh.createIndex('q', 's')
      await mesh.createIndex('q', 'n')
      await mesh.createIndex('q', 'o.city')
      await mesh.createIndex('not_yet_written', 'x')
      expect(await Promise.all(queries.map(find))).toEqual(before)
      await mesh.upsert('q', [{ _id: 'f', s: 'x', n: 0, o: { city: 'Oslo' } }])
      expect(await find({ filter: { 'o.city': 'Oslo' } })).toEqual(['a', 'c', 'f'])
      expect(await find({ filter: { s: 'x' }, orderBy: 'n' })).toEqual(['f', 'a', 'c'])
    })
  })
}
