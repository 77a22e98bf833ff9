import { describe, expect } from 'vitest'
import { type ErrorCode, ValidationError } from '../../errors.js'
import type { Document, JsonObject } from '../document.js'
import type { Query } from '../query.js'
import { expectCode, expectThrowsCode, ids } from './expectations.js'
import type { ConformanceSuite } from './suite.js'

/** Bad input: refused with a stable code, and nothing is written. */
export function badInputContract(suite: ConformanceSuite): void {
  const { test } = suite

  describe('bad input is rejected with a code and writes nothing', () => {
    const rejects = async (op: () => Promise<unknown>, code: ErrorCode) => {
      const before = await suite.mesh.currentCursor()
      await expectCode(op(), code)
      expect(await suite.mesh.currentCursor()).toBe(before)
    }

    test('collection names', async (mesh) => {
      for (const c of ['a-b', '1x', 'x;drop', '', 'a.b', 'a b', 'x"', 'é', 'x'.repeat(1000), 7]) {
        const name = c as string
        await rejects(() => mesh.upsert(name, [{ _id: 'a' }]), 'INVALID_COLLECTION')
        await rejects(() => mesh.remove(name, ['a']), 'INVALID_COLLECTION')
        await rejects(() => mesh.increment(name, 'a', 'n', 1), 'INVALID_COLLECTION')
        await expectCode(mesh.get(name, 'a'), 'INVALID_COLLECTION')
        await expectCode(mesh.find({ collection: name }), 'INVALID_COLLECTION')
        await expectCode(mesh.count({ collection: name }), 'INVALID_COLLECTION')
        await expectCode(mesh.createIndex(name, 'a'), 'INVALID_COLLECTION')
        await expectCode(mesh.changesSince(null, { collection: name }), 'INVALID_COLLECTION')
        expectThrowsCode(() => mesh.observe({ collection: name }, () => {}), 'INVALID_COLLECTION')
      }
      expect((await mesh.stats()).documents).toBe(0)
    })

    test('field names', async (mesh) => {
      const bad = ['x.y', '$set', 'a$', '__proto__', 'constructor', 'prototype', '', 'quo"te']
      for (const field of bad) {
        const doc = JSON.parse(`{"_id":"a",${JSON.stringify(field)}:1}`) as Document
        await rejects(() => mesh.upsert('c', [doc]), 'INVALID_FIELD')
        await rejects(() => mesh.increment('c', 'a', field, 1), 'INVALID_FIELD')
      }
      await expectCode(mesh.createIndex('c', 'a..b'), 'INVALID_FIELD')
      await expectCode(mesh.createIndex('c', '$where'), 'INVALID_FIELD')
      expect(await mesh.get('c', 'a')).toBeUndefined()
    })

    test('ids', async (mesh) => {
      await mesh.upsert('c', [{ _id: 'keep' }])
      for (const id of ['', Number.NaN, Number.POSITIVE_INFINITY, null, true, {}, ['a'], 'x'.repeat(10_000)]) {
        const bad = id as string
        await rejects(() => mesh.upsert('c', [{ _id: bad }]), 'INVALID_ID')
        await rejects(() => mesh.remove('c', ['keep', bad]), 'INVALID_ID')
        await rejects(() => mesh.increment('c', bad, 'n', 1), 'INVALID_ID')
        await expectCode(mesh.get('c', bad), 'INVALID_ID')
      }
      await rejects(() => mesh.upsert('c', [{ v: 1 } as never]), 'INVALID_ID')
      expect(ids(await mesh.find({ collection: 'c' }))).toEqual(['keep'])
    })

    test('non-JSON values', async (mesh) => {
      const cyclic: Record<string, unknown> = { a: 1 }
      cyclic.self = cyclic
      const cyclicList: unknown[] = [1]
      cyclicList.push(cyclicList)
      const sparse = [1, 2, 3]
      delete sparse[1]
      const bad: unknown[] = [
        Number.NaN,
        Number.POSITIVE_INFINITY,
        Number.NEGATIVE_INFINITY,
        10n,
        () => 1,
        Symbol('s'),
        [1, undefined],
        sparse,
        { nested: [Number.NaN] },
        { nested: { deeper: undefined, fn: () => 2 } },
        new Date(),
        new Map([[1, 2]]),
        new Set([1]),
        /re/,
        new Uint8Array(2),
        new (class Point {
          x = 1
        })(),
        cyclic,
        cyclicList,
        JSON.parse('{"__proto__":{"polluted":true}}'),
      ]
      for (const v of bad) await rejects(() => mesh.upsert('c', [{ _id: 'a', v } as never]), 'INVALID_DOCUMENT')
      expect(({} as Record<string, unknown>).polluted).toBeUndefined()
      await rejects(() => mesh.increment('c', 'a', 'n', Number.NaN), 'INVALID_OPTIONS')
      await rejects(() => mesh.increment('c', 'a', 'n', '1' as never), 'INVALID_OPTIONS')
      expect(await mesh.get('c', 'a')).toBeUndefined()
    })

    test('oversized documents fail with DOC_TOO_LARGE', async (mesh) => {
      await rejects(() => mesh.upsert('c', [{ _id: 'big', v: 'x'.repeat(2 * 1024 * 1024) }]), 'DOC_TOO_LARGE')
      const many: JsonObject = {}
      for (let i = 0; i < 2048; i++) many[`f${i}`] = 'y'.repeat(1024)
      await rejects(() => mesh.upsert('c', [{ _id: 'wide', ...many }]), 'DOC_TOO_LARGE')
      await mesh.upsert('c', [{ _id: 'grow', v: 'small' }])
      await rejects(() => mesh.upsert('c', [{ _id: 'grow', w: 'x'.repeat(2 * 1024 * 1024) }]), 'DOC_TOO_LARGE')
      expect(await mesh.get('c', 'grow')).toEqual({ _id: 'grow', v: 'small' })
    })

    test('one bad document rejects the whole batch', async (mesh) => {
      await mesh.upsert('c', [{ _id: 'ok1', v: 0 }])
      const batches: [unknown[], ErrorCode][] = [
        [[{ _id: 'ok1', v: 1 }, { _id: 'bad', v: Number.NaN }, { _id: 'ok2' }], 'INVALID_DOCUMENT'],
        [
          [
            { _id: 'ok1', v: 1 },
            { _id: 'big', v: 'x'.repeat(2 * 1024 * 1024) },
          ],
          'DOC_TOO_LARGE',
        ],
        [
          [
            { _id: 'ok1', v: 1 },
            { _id: 'ok2', 'a.b': 1 },
          ],
          'INVALID_FIELD',
        ],
        [[{ _id: 'ok1', v: 1 }, { _id: '' }], 'INVALID_ID'],
        [[{ _id: 'ok1', v: 1 }, 'not a document'], 'INVALID_DOCUMENT'],
      ]
      for (const [docs, code] of batches) await rejects(() => mesh.upsert('c', docs as never), code)
      await rejects(() => mesh.upsert('c', [{ _id: 'ok1', v: 1 }], { mode: 'overwrite' as never }), 'INVALID_OPTIONS')
      expect(await mesh.find({ collection: 'c' })).toEqual([{ _id: 'ok1', v: 0 }])
    })

    test('malformed queries fail with INVALID_QUERY', async (mesh) => {
      const bad: unknown[] = [
        { collection: 'c', filter: { a: { $regex: 'x' } } },
        { collection: 'c', filter: { a: { $in: 'x' } } },
        { collection: 'c', filter: { a: { $nin: 1 } } },
        { collection: 'c', filter: { a: { $exists: 'yes' } } },
        { collection: 'c', filter: { a: { $gt: {} } } },
        { collection: 'c', filter: { a: { $gt: [1] } } },
        { collection: 'c', filter: { a: { $eq: Number.NaN } } },
        { collection: 'c', filter: { a: { $not: 3 } } },
        { collection: 'c', filter: { a: { $gt: 1, b: 2 } } },
        { collection: 'c', filter: { $where: 'true' } },
        { collection: 'c', filter: { $or: { a: 1 } } },
        { collection: 'c', filter: { $and: [1] } },
        { collection: 'c', filter: { 'a..b': 1 } },
        { collection: 'c', filter: 'a = 1' },
        { collection: 'c', limit: -1 },
        { collection: 'c', limit: 0 },
        { collection: 'c', limit: 1.5 },
        { collection: 'c', offset: -1 },
        { collection: 'c', orderBy: { field: 'a', direction: 'sideways' } },
        { collection: 'c', orderBy: 'a.$b' },
        { collection: 'c', orderBy: 5 },
        { collection: 'c', where: { a: 1 } },
      ]
      for (const q of bad) {
        const query = q as Query
        await expectCode(mesh.find(query), 'INVALID_QUERY')
        expectThrowsCode(() => mesh.observe(query, () => {}), 'INVALID_QUERY')
      }
      await expectCode(mesh.count({ collection: 'c', filter: { a: { $gt: {} } } } as never), 'INVALID_QUERY')
      await expectCode(
        mesh.changesSince(null, { collection: 'c', filter: { a: { $regex: 'x' } } } as never),
        'INVALID_QUERY',
      )
      await expectCode(mesh.changesSince(null, { collection: 'c' }, { limit: 0 }), 'INVALID_OPTIONS')
      // Every backend refuses a bad page size with the same error class, so callers can handle it once.
      for (const limit of [0, -1, 1.5, Number.NaN, '10']) {
        await expect(mesh.changesSince(null, { collection: 'c' }, { limit } as never)).rejects.toBeInstanceOf(
          ValidationError,
        )
      }
      expect((await mesh.stats()).observers).toBe(0)
    })
  })
}
