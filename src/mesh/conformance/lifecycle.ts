import { describe, expect } from 'vitest'
import { expectCode, expectThrowsCode, ids } from './expectations.js'
import type { ConformanceSuite } from './suite.js'

/** Closing, disposal, persistence across a reopen, and stats. */
export function lifecycleContract(suite: ConformanceSuite): void {
  const { test, watch, reopen, canReopen } = suite

  describe('lifecycle and persistence', () => {
    test('close is idempotent and later calls fail with STORE_CLOSED', async (mesh) => {
      await mesh.upsert('c', [{ _id: 'a' }])
      await Promise.all([mesh.close(), mesh.close()])
      await mesh.close()
      await expectCode(mesh.upsert('c', [{ _id: 'b' }]), 'STORE_CLOSED')
      await expectCode(mesh.get('c', 'a'), 'STORE_CLOSED')
      await expectCode(mesh.find({ collection: 'c' }), 'STORE_CLOSED')
      await expectCode(mesh.changesSince(null, { collection: 'c' }), 'STORE_CLOSED')
      await expectCode(
        mesh.transaction(async () => 1),
        'STORE_CLOSED',
      )
      expectThrowsCode(() => mesh.observe({ collection: 'c' }, () => {}), 'STORE_CLOSED')
      await expectCode(mesh.stats(), 'STORE_CLOSED')
    })

    test('closing cancels observers; cancelling one afterwards is harmless', async (mesh) => {
      const w = watch({ collection: 'c' })
      await w.observer.ready
      await mesh.close()
      w.observer.cancel()
      w.observer[Symbol.dispose]()
      expect(w.received).toBe(0)
    })

    test('writes queued before close complete', async (mesh, ctx) => {
      const pending = mesh.upsert('c', [{ _id: 'a', v: 1 }])
      const counted = mesh.increment('c', 'n', 'qty', 2)
      await mesh.close()
      await expect(pending).resolves.toEqual({ changed: ['a'], unchanged: [] })
      await expect(counted).resolves.toBe(2)
      if (!canReopen()) return // What follows checks they were persisted.
      const store = await reopen(ctx)
      expect(await store.get('c', 'a')).toEqual({ _id: 'a', v: 1 })
      expect(await store.get('c', 'n')).toEqual({ _id: 'n', qty: 2 })
    })

    test('documents, removals, counters and indexes survive a reopen', async (mesh, ctx) => {
      await mesh.upsert('c', [
        { _id: 'a', v: 1, o: { k: 'x' } },
        { _id: 'b', v: 2 },
        { _id: 'c', v: 3 },
      ])
      await mesh.remove('c', ['b'])
      await mesh.increment('c', 'c', 'n', 5)
      await mesh.createIndex('c', 'o.k')
      const siteId = mesh.siteId
      const store = await reopen(ctx)
      expect(store.siteId).toBe(siteId)
      expect(await store.find({ collection: 'c' })).toEqual([
        { _id: 'a', v: 1, o: { k: 'x' } },
        { _id: 'c', v: 3, n: 5 },
      ])
      expect(await store.stats()).toMatchObject({ documents: 2, tombstones: 1, observers: 0, observerErrors: 0 })
      expect(await store.increment('c', 'c', 'n', 1)).toBe(6)
      expect(ids(await store.find({ collection: 'c', filter: { 'o.k': 'x' } }))).toEqual(['a'])
      await store.createIndex('c', 'o.k')
      const all = await store.changesSince(null, { collection: 'c' })
      expect(all.removed).toEqual(['b'])
      expect(await store.remove('c', ['b'])).toEqual({ changed: [], unchanged: ['b'] })
    })

    test('a store that keeps conflicts lists none for its own writes, refuses a bad query, and fails once closed', async (mesh, ctx) => {
      if (!mesh.conflicts || !mesh.conflictCount) return ctx.skip('the store keeps no conflicts (optional)')
      await mesh.upsert('c', [{ _id: 'a', v: 1 }])
      await mesh.upsert('c', [{ _id: 'a', v: 2 }])
      await mesh.remove('c', ['a'])
      await mesh.upsert('c', [{ _id: 'a', v: 3 }])
      expect(await mesh.conflicts()).toEqual([])
      expect(await mesh.conflicts({ collection: 'c', limit: 5 })).toEqual([])
      expect(await mesh.conflictCount()).toBe(0)
      await expectCode(mesh.conflicts({ limit: -1 }), 'INVALID_OPTIONS')
      await expectCode(mesh.conflicts({ collection: '' }), 'INVALID_COLLECTION')
      await mesh.close()
      await expectCode(mesh.conflicts(), 'STORE_CLOSED')
      await expectCode(mesh.conflictCount(), 'STORE_CLOSED')
    })

    test('asyncDispose closes the store', async (mesh) => {
      {
        await using disposable = mesh
        await disposable.upsert('c', [{ _id: 'a' }])
      }
      await expectCode(mesh.get('c', 'a'), 'STORE_CLOSED')
      await mesh.close()
    })

    test('stats count documents, tombstones and observers', async (mesh) => {
      expect(await mesh.stats()).toMatchObject({ documents: 0, tombstones: 0, observers: 0, observerErrors: 0 })
      expect(typeof mesh.siteId).toBe('string')
      expect(mesh.siteId.length).toBeGreaterThan(0)
      await mesh.upsert('c', [{ _id: 'a' }, { _id: 'b' }, { _id: 'c' }])
      await mesh.upsert('d', [{ _id: 'a' }])
      await mesh.remove('c', ['b'])
      const obs = mesh.observe({ collection: 'c' }, () => {})
      await obs.ready
      expect(await mesh.stats()).toMatchObject({ documents: 3, tombstones: 1, observers: 1, observerErrors: 0 })
      obs.cancel()
      await mesh.upsert('c', [{ _id: 'b' }])
      expect(await mesh.stats()).toMatchObject({ documents: 4, tombstones: 0, observers: 0 })
    })
  })
}
