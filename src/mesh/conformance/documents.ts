import { describe, expect } from 'vitest'
import type { Document } from '../document.js'
import { expectCode } from './expectations.js'
import type { ConformanceSuite } from './suite.js'

/** Writing, reading and removing documents: merge and replace, equality, ids, collections. */
export function documentsContract(suite: ConformanceSuite): void {
  const { test } = suite

  describe('documents', () => {
    test('upsert merges fields by default and replaces on request', async (mesh) => {
      await mesh.upsert('items', [{ _id: 'a', name: 'tea', qty: 1 }])
      await mesh.upsert('items', [{ _id: 'a', price: 3 }])
      expect(await mesh.get('items', 'a')).toEqual({ _id: 'a', name: 'tea', qty: 1, price: 3 })
      await mesh.upsert('items', [{ _id: 'a', name: 'coffee' }], { mode: 'replace' })
      expect(await mesh.get('items', 'a')).toEqual({ _id: 'a', name: 'coffee' })
      await mesh.upsert('items', [{ _id: 'a', name: 'coffee' }], { mode: 'merge' })
      expect(await mesh.get('items', 'a')).toEqual({ _id: 'a', name: 'coffee' })
    })

    test('fields set to undefined are absent; null is a value', async (mesh) => {
      await mesh.upsert('items', [{ _id: 'a', keep: 1, gone: 2 }])
      await mesh.upsert('items', [{ _id: 'a', keep: undefined, note: null }])
      expect(await mesh.get('items', 'a')).toEqual({ _id: 'a', keep: 1, gone: 2, note: null })
      await mesh.upsert('items', [{ _id: 'a', keep: 1, gone: undefined }], { mode: 'replace' })
      expect(await mesh.get('items', 'a')).toEqual({ _id: 'a', keep: 1 })
    })

    test('documents round-trip exactly', async (mesh) => {
      const doc: Document = {
        _id: 'rt',
        int: 9007199254740991,
        neg: -12,
        float: 0.1,
        small: 1e-7,
        text: 'naïve ☕ 😀 "quoted" \\ \n',
        empty: '',
        yes: true,
        no: false,
        nothing: null,
        list: [1, 'two', null, false, [3], { four: 4 }],
        emptyList: [],
        emptyObject: {},
        nested: { a: { b: { c: 'deep' } }, 'key with spaces': 1 },
      }
      await mesh.upsert('items', [doc])
      expect(await mesh.get('items', 'rt')).toEqual(doc)
      expect(await mesh.find({ collection: 'items' })).toEqual([doc])
      const big = { _id: 'big', blob: 'x'.repeat(100 * 1024) }
      await mesh.upsert('items', [big])
      expect(await mesh.get('items', 'big')).toEqual(big)
    })

    test('numeric ids are normalised to strings', async (mesh) => {
      const r = await mesh.upsert('items', [
        { _id: 42, v: 1 },
        { _id: 1.5, v: 2 },
      ])
      expect(r).toEqual({ changed: ['42', '1.5'], unchanged: [] })
      expect(await mesh.get('items', 42)).toEqual({ _id: '42', v: 1 })
      expect(await mesh.get('items', '42')).toEqual({ _id: '42', v: 1 })
      expect(await mesh.get('items', '1.5')).toEqual({ _id: '1.5', v: 2 })
      expect(await mesh.upsert('items', [{ _id: '42', v: 1 }])).toEqual({ changed: [], unchanged: ['42'] })
      expect(await mesh.increment('items', 42, 'n', 2)).toBe(2)
      expect(await mesh.remove('items', [42])).toEqual({ changed: ['42'], unchanged: [] })
      expect(await mesh.get('items', '42')).toBeUndefined()
    })

    test('writing equal values is not a change', async (mesh) => {
      expect(
        await mesh.upsert('items', [
          { _id: 'a', v: { x: [1, 2], y: 'z' } },
          { _id: 'b', v: 1 },
        ]),
      ).toEqual({ changed: ['a', 'b'], unchanged: [] })
      expect(
        await mesh.upsert('items', [
          { _id: 'a', v: { y: 'z', x: [1, 2] } },
          { _id: 'b', v: 2 },
        ]),
      ).toEqual({ changed: ['b'], unchanged: ['a'] })
      const cursor = await mesh.currentCursor()
      expect(await mesh.upsert('items', [{ _id: 'a', v: { x: [1, 2], y: 'z' } }])).toEqual({
        changed: [],
        unchanged: ['a'],
      })
      expect(await mesh.upsert('items', [{ _id: 'b', v: 2 }], { mode: 'replace' })).toEqual({
        changed: [],
        unchanged: ['b'],
      })
      expect(await mesh.currentCursor()).toBe(cursor)
      expect((await mesh.changesSince(cursor, { collection: 'items' })).changed).toEqual([])
      expect(await mesh.upsert('items', [{ _id: 'a' }], { mode: 'replace' })).toEqual({
        changed: ['a'],
        unchanged: [],
      })
      expect(await mesh.get('items', 'a')).toEqual({ _id: 'a' })
    })

    test('rewriteEqual writes equal values as a change', async (mesh) => {
      await mesh.upsert('items', [{ _id: 'a', v: 1, w: 'x' }])
      const cursor = await mesh.currentCursor()
      expect(await mesh.upsert('items', [{ _id: 'a', v: 1 }], { rewriteEqual: true })).toEqual({
        changed: ['a'],
        unchanged: [],
      })
      expect(await mesh.get('items', 'a')).toEqual({ _id: 'a', v: 1, w: 'x' })
      expect((await mesh.changesSince(cursor, { collection: 'items' })).changed.map((d) => d._id)).toEqual(['a'])
      const after = await mesh.currentCursor()
      await expectCode(
        mesh.upsert('items', [{ _id: 'a', v: 2 }], { rewriteEqual: 'yes' as unknown as boolean }),
        'INVALID_OPTIONS',
      )
      expect(await mesh.get('items', 'a')).toEqual({ _id: 'a', v: 1, w: 'x' })
      expect(await mesh.currentCursor()).toBe(after)
    })

    test('remove leaves the document gone, and a later write re-creates it', async (mesh) => {
      await mesh.upsert('items', [
        { _id: 'a', v: 1, w: 2 },
        { _id: 'b', v: 1 },
      ])
      expect(await mesh.remove('items', ['a', 'missing'])).toEqual({ changed: ['a'], unchanged: ['missing'] })
      expect(await mesh.get('items', 'a')).toBeUndefined()
      expect(await mesh.find({ collection: 'items' })).toEqual([{ _id: 'b', v: 1 }])
      expect(await mesh.count({ collection: 'items' })).toBe(1)
      expect(await mesh.remove('items', ['a'])).toEqual({ changed: [], unchanged: ['a'] })
      await mesh.upsert('items', [{ _id: 'a', v: 3 }])
      expect(await mesh.get('items', 'a')).toEqual({ _id: 'a', v: 3 })
      expect(await mesh.count({ collection: 'items' })).toBe(2)
    })

    test('collections are separate namespaces', async (mesh) => {
      await mesh.upsert('one', [{ _id: 'a', v: 1 }])
      await mesh.upsert('two', [{ _id: 'a', v: 2 }])
      await mesh.remove('two', ['a'])
      expect(await mesh.get('one', 'a')).toEqual({ _id: 'a', v: 1 })
      expect(await mesh.get('two', 'a')).toBeUndefined()
      expect(await mesh.count({ collection: 'one' })).toBe(1)
      expect(await mesh.find({ collection: 'never_written' })).toEqual([])
      expect(await mesh.get('never_written', 'a')).toBeUndefined()
    })
  })
}
