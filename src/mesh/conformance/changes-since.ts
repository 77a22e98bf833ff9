import { describe, expect } from 'vitest'
import type { Document } from '../document.js'
import type { MeshStore } from '../mesh-store.js'
import { expectCode, ids } from './expectations.js'
import type { ConformanceSuite } from './suite.js'

/** changesSince and cursors: later changes only, once each, scoped, paged, foreign cursors refused. */
export function changesSinceContract(suite: ConformanceSuite): void {
  const { test, reopen, openAnother } = suite

  describe('changesSince', () => {
    test('from null returns everything; from a cursor only later changes', async (mesh) => {
      await mesh.upsert('c', [
        { _id: 'a', v: 1 },
        { _id: 'b', v: 2 },
      ])
      await mesh.upsert('other', [{ _id: 'x' }])
      await mesh.remove('other', ['x'])
      const all = await mesh.changesSince(null, { collection: 'c' })
      expect(ids(all.changed).sort()).toEqual(['a', 'b'])
      expect(all.removed).toEqual([])
      expect(all.hasMore).toBe(false)
      expect(typeof all.cursor).toBe('string')
      const none = await mesh.changesSince(all.cursor, { collection: 'c' })
      expect(none).toMatchObject({ changed: [], removed: [], hasMore: false })
      await mesh.upsert('c', [{ _id: 'a', v: 10 }])
      await mesh.remove('c', ['b'])
      await mesh.upsert('other', [{ _id: 'y' }])
      const later = await mesh.changesSince(all.cursor, { collection: 'c' })
      expect(later.changed).toEqual([{ _id: 'a', v: 10 }])
      expect(later.removed).toEqual(['b'])
      const fromNull = await mesh.changesSince(null, { collection: 'c' })
      expect(fromNull.changed).toEqual([{ _id: 'a', v: 10 }])
      expect(fromNull.removed).toEqual(['b'])
    })

    test('reports each document once, in the order of its latest change', async (mesh) => {
      const start = await mesh.currentCursor()
      await mesh.upsert('c', [{ _id: 'b', v: 1 }])
      await mesh.upsert('c', [{ _id: 'a', v: 1 }])
      await mesh.upsert('c', [{ _id: 'c', v: 1 }])
      await mesh.upsert('c', [{ _id: 'b', v: 2 }])
      await mesh.remove('c', ['c'])
      await mesh.upsert('c', [{ _id: 'c', v: 3 }])
      const set = await mesh.changesSince(start, { collection: 'c' })
      expect(set.changed).toEqual([
        { _id: 'a', v: 1 },
        { _id: 'b', v: 2 },
        { _id: 'c', v: 3 },
      ])
      expect(set.removed).toEqual([])
    })

    test('honours the scope filter', async (mesh) => {
      await mesh.upsert('c', [
        { _id: 'a', branch: 1 },
        { _id: 'b', branch: 2 },
        { _id: 'c', branch: 1 },
      ])
      const set = await mesh.changesSince(null, { collection: 'c', filter: { branch: 1 } })
      expect(ids(set.changed).sort()).toEqual(['a', 'c'])
      await mesh.upsert('c', [{ _id: 'b', v: 1 }])
      await mesh.upsert('c', [{ _id: 'a', v: 1 }])
      const later = await mesh.changesSince(set.cursor, { collection: 'c', filter: { branch: 1 } })
      expect(later.changed).toEqual([{ _id: 'a', branch: 1, v: 1 }])
    })

    test('pages with limit and hasMore without losing anything', async (mesh) => {
      const docs = Array.from({ length: 25 }, (_, i) => ({ _id: `d${String(i).padStart(2, '0')}`, i }))
      await mesh.upsert('c', docs)
      await mesh.remove('c', ['d03'])
      const latest = new Map<string, Document>()
      const removed: string[] = []
      let cursor: string | null = null
      let pages = 0
      for (;;) {
        const set: Awaited<ReturnType<MeshStore['changesSince']>> = await mesh.changesSince(
          cursor,
          { collection: 'c' },
          { limit: 7 },
        )
        pages++
        expect(set.changed.length + set.removed.length).toBeLessThanOrEqual(7)
        for (const d of set.changed) latest.set(d._id, d)
        removed.push(...set.removed)
        cursor = set.cursor
        if (pages === 1) {
          // Written while paging: must arrive in a later page.
          await mesh.upsert('c', [
            { _id: 'late', i: 99 },
            { _id: 'd00', i: -1 },
          ])
        }
        if (!set.hasMore) break
        if (pages > 20) throw new Error('changesSince kept answering hasMore')
      }
      expect(pages).toBeGreaterThan(2)
      expect(latest.size).toBe(25)
      expect(latest.get('late')).toEqual({ _id: 'late', i: 99 })
      expect(latest.get('d00')).toEqual({ _id: 'd00', i: -1 })
      expect(removed).toEqual(['d03'])
      expect(await mesh.changesSince(cursor, { collection: 'c' })).toMatchObject({ changed: [], removed: [] })
    })

    test('currentCursor marks the latest change', async (mesh) => {
      await mesh.upsert('c', [{ _id: 'a', v: 1 }])
      const cursor = await mesh.currentCursor()
      expect(typeof cursor).toBe('string')
      expect(await mesh.changesSince(cursor, { collection: 'c' })).toMatchObject({ changed: [], removed: [] })
      await mesh.upsert('c', [{ _id: 'b', v: 2 }])
      expect(await mesh.currentCursor()).not.toBe(cursor)
      const set = await mesh.changesSince(cursor, { collection: 'c' })
      expect(set.changed).toEqual([{ _id: 'b', v: 2 }])
      expect(await mesh.changesSince(await mesh.currentCursor(), { collection: 'c' })).toMatchObject({
        changed: [],
        removed: [],
      })
    })

    test('rejects a cursor it did not issue with INVALID_CURSOR', async (mesh) => {
      await mesh.upsert('c', [{ _id: 'a' }])
      const foreign = await openAnother()
      await foreign.upsert('c', [{ _id: 'a' }, { _id: 'b' }])
      await foreign.upsert('c', [{ _id: 'c' }])
      const bad: unknown[] = [
        'garbage',
        '',
        `${await mesh.currentCursor()}x`,
        await foreign.currentCursor(),
        (await foreign.changesSince(null, { collection: 'c' })).cursor,
        42,
        {},
      ]
      for (const cursor of bad) {
        await expectCode(mesh.changesSince(cursor as string, { collection: 'c' }), 'INVALID_CURSOR')
      }
    })

    test('cursors survive a reopen', async (mesh, ctx) => {
      await mesh.upsert('c', [{ _id: 'a', v: 1 }])
      const cursor = (await mesh.changesSince(null, { collection: 'c' })).cursor
      const current = await mesh.currentCursor()
      const store = await reopen(ctx)
      expect(await store.currentCursor()).toBe(current)
      expect(await store.changesSince(cursor, { collection: 'c' })).toMatchObject({ changed: [], removed: [] })
      await store.upsert('c', [{ _id: 'b', v: 2 }])
      await store.remove('c', ['a'])
      const set = await store.changesSince(cursor, { collection: 'c' })
      expect(set.changed).toEqual([{ _id: 'b', v: 2 }])
      expect(set.removed).toEqual(['a'])
      expect(await store.currentCursor()).toBe(set.cursor)
    })
  })
}
