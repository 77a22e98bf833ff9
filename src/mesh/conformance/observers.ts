import { describe, expect } from 'vitest'
import type { MeshStoreEvents, ObserverChange } from '../mesh-store.js'
import type { Query } from '../query.js'
import { ids, summary } from './expectations.js'
import { deferred, turn } from './probes.js'
import type { ConformanceSuite } from './suite.js'

/** Observers: initial results, diffs in commit order, one delivery at a time, cancel, listener errors. */
export function observersContract(suite: ConformanceSuite): void {
  const { test, watch, inbox } = suite

  describe('observers', () => {
    test('deliver the initial result, then inserted, updated and removed diffs', async (mesh) => {
      await mesh.upsert('o', [{ _id: 'a', open: true, v: 1 }])
      const w = watch({ collection: 'o', filter: { open: true } }, { initial: true })
      await w.observer.ready
      expect(w.received).toBe(1)
      const first = await w.next()
      expect(first.initial).toBe(true)
      expect(first.inserted).toEqual([{ _id: 'a', open: true, v: 1 }])
      expect(first.updated).toEqual([])
      expect(first.removed).toEqual([])

      await mesh.upsert('o', [{ _id: 'b', open: true }])
      const ins = await w.next()
      expect(ins.initial).toBe(false)
      expect(summary(ins)).toEqual({ inserted: ['b'], updated: [], removed: [] })
      await mesh.upsert('o', [{ _id: 'a', v: 2 }])
      expect(await w.next()).toMatchObject({ inserted: [], updated: [{ _id: 'a', open: true, v: 2 }], removed: [] })
      await mesh.upsert('o', [{ _id: 'a', open: false }])
      expect(await w.next()).toMatchObject({
        inserted: [],
        updated: [],
        removed: [{ _id: 'a', previous: { _id: 'a', open: true, v: 2 } }],
      })
      await mesh.remove('o', ['b'])
      const gone = await w.next()
      expect(summary(gone)).toEqual({ inserted: [], updated: [], removed: ['b'] })
      const previous = gone.removed[0]?.previous
      if (previous !== undefined) expect(previous).toEqual({ _id: 'b', open: true })
      await mesh.upsert('o', [{ _id: 'a', open: true }])
      const back = await w.next()
      expect(back.inserted).toEqual([{ _id: 'a', open: true, v: 2 }])
      await mesh.upsert('o', [{ _id: 'c', open: true }])
      expect(ids(await (await w.next()).results())).toEqual(['a', 'c'])
    })

    test('an initial delivery is made for an empty result too', async (mesh) => {
      const w = watch({ collection: 'o' }, { initial: true })
      await w.observer.ready
      expect(w.received).toBe(1)
      expect(await w.next()).toMatchObject({ initial: true, inserted: [], updated: [], removed: [] })
      await mesh.upsert('o', [{ _id: 'a' }])
      expect(summary(await w.next())).toEqual({ inserted: ['a'], updated: [], removed: [] })
    })

    test('writes that do not change the result are not delivered', async (mesh) => {
      await mesh.upsert('o', [{ _id: 'same', open: true, v: 1 }])
      const w = watch({ collection: 'o', filter: { open: true } })
      await w.observer.ready
      await mesh.upsert('o', [{ _id: 'x', open: false }])
      await mesh.upsert('o', [{ _id: 'x', open: false, v: 2 }])
      await mesh.remove('o', ['x'])
      await mesh.upsert('other', [{ _id: 'y', open: true }])
      await mesh.upsert('o', [{ _id: 'same', open: true, v: 1 }])
      await mesh.remove('o', ['never_existed'])
      await mesh.upsert('o', [{ _id: 'z', open: true }])
      const c = await w.next()
      expect(summary(c)).toEqual({ inserted: ['z'], updated: [], removed: [] })
    })

    test('deliveries come in commit order', async (mesh) => {
      const w = watch({ collection: 'o' })
      await w.observer.ready
      for (let i = 0; i < 20; i++) {
        await mesh.upsert('o', [{ _id: 'z', i }])
        if (i % 3 === 0) await turn()
      }
      let seen = -1
      while (seen < 19) {
        const c = await w.next()
        const doc = c.inserted[0] ?? c.updated[0]
        expect(c.inserted.length + c.updated.length).toBe(1)
        const i = doc?.i as number
        expect(i).toBeGreaterThan(seen)
        seen = i
      }
    })

    test('a slow listener gets one delivery at a time, later commits coalesced into the next', async (mesh) => {
      const calls = inbox<ObserverChange>('delivery to the slow listener')
      const gate = deferred()
      let active = 0
      let maxActive = 0
      const slow = mesh.observe({ collection: 'o' }, async (c) => {
        active++
        maxActive = Math.max(maxActive, active)
        calls.push(c)
        await gate.promise
        active--
      })
      await slow.ready
      await mesh.upsert('o', [{ _id: 'first' }])
      expect(summary(await calls.next())).toEqual({ inserted: ['first'], updated: [], removed: [] })
      // Committed while the first delivery is in progress, with turns of the event loop in between,
      // so that a store not waiting for the listener would deliver them one by one.
      for (let i = 0; i < 10; i++) {
        await mesh.upsert('o', [{ _id: `d${i}` }])
        await turn()
      }
      await mesh.upsert('o', [{ _id: 'd0', v: 1 }])
      await mesh.upsert('o', [{ _id: 'first', v: 1 }])
      await mesh.upsert('o', [{ _id: 'brief' }])
      await mesh.remove('o', ['brief'])
      gate.resolve()
      const second = await calls.next()
      expect(ids(second.inserted).sort()).toEqual(Array.from({ length: 10 }, (_, i) => `d${i}`))
      expect(second.inserted.find((d) => d._id === 'd0')).toEqual({ _id: 'd0', v: 1 })
      expect(second.updated).toEqual([{ _id: 'first', v: 1 }])
      expect(second.removed).toEqual([])
      await mesh.upsert('o', [{ _id: 'after' }])
      expect(summary(await calls.next())).toEqual({ inserted: ['after'], updated: [], removed: [] })
      expect(maxActive).toBe(1)
      slow.cancel()
    })

    test('cancel stops deliveries', async (mesh) => {
      const a = watch({ collection: 'o' })
      const b = watch({ collection: 'o' })
      await Promise.all([a.observer.ready, b.observer.ready])
      expect((await mesh.stats()).observers).toBe(2)
      await mesh.upsert('o', [{ _id: '1' }])
      await a.next()
      await b.next()
      a.observer.cancel()
      a.observer.cancel()
      expect((await mesh.stats()).observers).toBe(1)
      await mesh.upsert('o', [{ _id: '2' }])
      await mesh.upsert('o', [{ _id: '3' }])
      await b.until((c) => ids(c.inserted).includes('3'))
      expect(a.received).toBe(1)
      b.observer[Symbol.dispose]()
      expect((await mesh.stats()).observers).toBe(0)
    })

    test('cancel during a delivery drops the changes that were waiting', async (mesh) => {
      const calls = inbox<ObserverChange>('delivery to the cancelled listener')
      const gate = deferred()
      const slow = mesh.observe({ collection: 'o' }, async (c) => {
        calls.push(c)
        await gate.promise
      })
      const other = watch({ collection: 'o' })
      await Promise.all([slow.ready, other.observer.ready])
      await mesh.upsert('o', [{ _id: '1' }])
      await calls.next()
      await mesh.upsert('o', [{ _id: '2' }])
      slow.cancel()
      gate.resolve()
      // Two more commits seen by another observer: anything still due to the cancelled one came first.
      for (const id of ['3', '4']) {
        await mesh.upsert('o', [{ _id: id }])
        await other.until((c) => ids(c.inserted).includes(id))
      }
      expect(calls.received).toBe(1)
    })

    test('listener errors go to onError, the observer-error event and stats', async (mesh) => {
      const query: Query = { collection: 'o', filter: { kind: 'sync' } }
      const asyncQuery: Query = { collection: 'o', filter: { kind: 'async' } }
      const errors = inbox<unknown>('onError call')
      const events = inbox<MeshStoreEvents['observer-error']>('observer-error event')
      const off = mesh.on('observer-error', events.push)
      const failing = mesh.observe(
        query,
        () => {
          throw new Error('listener failed')
        },
        { onError: errors.push },
      )
      const rejecting = mesh.observe(
        asyncQuery,
        async () => {
          throw new Error('listener rejected')
        },
        { onError: errors.push },
      )
      const w = watch({ collection: 'o' })
      await Promise.all([failing.ready, rejecting.ready, w.observer.ready])

      await mesh.upsert('o', [{ _id: '1', kind: 'sync' }])
      expect(((await errors.next()) as Error).message).toBe('listener failed')
      const event = await events.next()
      expect((event.error as Error).message).toBe('listener failed')
      expect(event.query).toEqual(query)
      expect((await mesh.stats()).observerErrors).toBe(1)

      // The observers keep observing.
      await mesh.upsert('o', [{ _id: '2', kind: 'sync' }])
      await mesh.upsert('o', [{ _id: '3', kind: 'async' }])
      const messages = [await errors.next(), await errors.next()].map((e) => (e as Error).message).sort()
      expect(messages).toEqual(['listener failed', 'listener rejected'])
      await events.next()
      await events.next()
      expect((await mesh.stats()).observerErrors).toBe(3)

      // An unsubscribed event listener hears nothing more; the failure is still counted.
      off()
      await mesh.upsert('o', [{ _id: '4', kind: 'sync' }])
      await errors.next()
      await w.until((c) => ids(c.inserted).includes('4'))
      expect((await mesh.stats()).observerErrors).toBe(4)
      expect(events.received).toBe(3)
      failing.cancel()
      rejecting.cancel()
    })

    test('limited queries deliver changes to their window', async (mesh) => {
      await mesh.upsert('o', [
        { _id: 'a', rank: 1 },
        { _id: 'b', rank: 2 },
        { _id: 'c', rank: 3 },
      ])
      const w = watch({ collection: 'o', orderBy: 'rank', limit: 2 }, { initial: true })
      expect(ids((await w.next()).inserted)).toEqual(['a', 'b'])
      await mesh.upsert('o', [{ _id: 'z', rank: 0 }])
      const pushedOut = await w.next()
      expect(summary(pushedOut)).toEqual({ inserted: ['z'], updated: [], removed: ['b'] })
      expect(ids(await pushedOut.results())).toEqual(['z', 'a'])
      // Outside the window: not delivered (the next delivery is the one after).
      await mesh.upsert('o', [{ _id: 'c', rank: 4 }])
      await mesh.upsert('o', [{ _id: 'a', rank: 1, note: 'x' }])
      expect(summary(await w.next())).toEqual({ inserted: [], updated: ['a'], removed: [] })
      await mesh.remove('o', ['z'])
      expect(summary(await w.next())).toEqual({ inserted: ['b'], updated: [], removed: ['z'] })
    })

    test('a transaction is delivered once, after commit; a failed one never', async (mesh) => {
      const w = watch({ collection: 'o' })
      await w.observer.ready
      await expect(
        mesh.transaction(async (tx) => {
          await tx.upsert('o', [{ _id: 'never' }])
          throw new Error('rollback')
        }),
      ).rejects.toThrow('rollback')
      let running = false
      await mesh.transaction(async (tx) => {
        running = true
        await tx.upsert('o', [{ _id: 't1' }])
        await turn()
        await tx.upsert('o', [{ _id: 't2' }])
        await tx.upsert('o', [{ _id: 't1', v: 1 }])
        await turn()
        expect(w.received).toBe(0)
        running = false
      })
      expect(running).toBe(false)
      const c = await w.next()
      expect(ids(c.inserted).sort()).toEqual(['t1', 't2'])
      expect(c.inserted.find((d) => d._id === 't1')).toEqual({ _id: 't1', v: 1 })
      await mesh.upsert('o', [{ _id: 'marker' }])
      expect(summary(await w.next())).toEqual({ inserted: ['marker'], updated: [], removed: [] })
    })
  })
}
