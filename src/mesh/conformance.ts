import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { MeshmirrorError } from '../errors.js'
import type { Document } from './document.js'
import type { MeshStore, ObserveOptions, ObserverChange } from './mesh-store.js'
import type { Query } from './query.js'

/** A store under test, and how to reopen it on the same data. */
export interface ConformanceSubject {
  store: MeshStore
  /** Closes nothing: opens the same persistence again (after the suite closed `store`). Omit when unsupported. */
  reopen?: () => Promise<MeshStore>
  /** Removes what the subject created. Called after the stores are closed. */
  cleanup?: () => Promise<void>
}

export interface ConformanceOptions {
  /** Tests to skip, by name, each with the reason (reported in the test title). */
  skip?: Record<string, string>
  /** How long to wait for an observer delivery, in ms. Default 5,000. */
  deliveryTimeoutMs?: number
}

/**
 * The acceptance suite every {@link MeshStore} implementation passes.
 * Call it inside a vitest test file.
 *
 * @example
 * ```ts
 * import { runMeshStoreConformance } from 'meshmirror/testing'
 * runMeshStoreConformance('my backend', async () => {
 *   const dir = await mkdtemp(join(tmpdir(), 'mesh-'))
 *   return { store: await openMyStore(dir), reopen: () => openMyStore(dir), cleanup: () => rm(dir, { recursive: true }) }
 * })
 * ```
 */
export function runMeshStoreConformance(
  name: string,
  factory: () => Promise<ConformanceSubject>,
  options: ConformanceOptions = {},
): void {
  const timeout = options.deliveryTimeoutMs ?? 5_000
  describe(`MeshStore conformance: ${name}`, () => {
    let subject: ConformanceSubject
    let mesh: MeshStore
    const opened: MeshStore[] = []

    beforeEach(async () => {
      subject = await factory()
      mesh = subject.store
      opened.push(mesh)
    })

    afterEach(async () => {
      for (const s of opened.splice(0)) await s.close()
      await subject.cleanup?.()
    })

    const test = (title: string, fn: () => Promise<void>) => {
      const reason = options.skip?.[title]
      if (reason) it.skip(`${title} (skipped: ${reason})`, fn)
      else it(title, fn)
    }

    const reopen = async (): Promise<MeshStore> => {
      if (!subject.reopen) throw new Error('reopen unsupported')
      await mesh.close()
      mesh = await subject.reopen()
      opened.push(mesh)
      return mesh
    }

    const ids = (docs: Document[]) => docs.map((d) => d._id)
    const watch = (query: Query, opts?: ObserveOptions) => deliveries(mesh, query, timeout, opts)

    describe('writes', () => {
      test('upsert merges fields by default and replaces on request', async () => {
        await mesh.upsert('items', [{ _id: 'a', name: 'tea', qty: 1 }])
        await mesh.upsert('items', [{ _id: 'a', price: 3 }])
        expect(await mesh.get('items', 'a')).toEqual({ _id: 'a', name: 'tea', qty: 1, price: 3 })
        await mesh.upsert('items', [{ _id: 'a', name: 'coffee' }], { mode: 'replace' })
        expect(await mesh.get('items', 'a')).toEqual({ _id: 'a', name: 'coffee' })
      })

      test('numeric ids are normalised to strings', async () => {
        const r = await mesh.upsert('items', [{ _id: 42, v: 1 }])
        expect(r.changed).toEqual(['42'])
        expect(await mesh.get('items', 42)).toEqual({ _id: '42', v: 1 })
        expect(await mesh.get('items', '42')).toEqual({ _id: '42', v: 1 })
      })

      test('writing equal values is not a change', async () => {
        expect(
          await mesh.upsert('items', [
            { _id: 'a', v: { x: [1, 2] } },
            { _id: 'b', v: 1 },
          ]),
        ).toEqual({
          changed: ['a', 'b'],
          unchanged: [],
        })
        expect(
          await mesh.upsert('items', [
            { _id: 'a', v: { x: [1, 2] } },
            { _id: 'b', v: 2 },
          ]),
        ).toEqual({
          changed: ['b'],
          unchanged: ['a'],
        })
        const cursor = await mesh.currentCursor()
        await mesh.upsert('items', [{ _id: 'a', v: { x: [1, 2] } }])
        expect(await mesh.currentCursor()).toBe(cursor)
      })

      test('remove leaves the document gone, and a later write re-creates it', async () => {
        await mesh.upsert('items', [{ _id: 'a', v: 1, w: 2 }])
        expect(await mesh.remove('items', ['a', 'missing'])).toEqual({ changed: ['a'], unchanged: ['missing'] })
        expect(await mesh.get('items', 'a')).toBeUndefined()
        expect(await mesh.find({ collection: 'items' })).toEqual([])
        expect(await mesh.remove('items', ['a'])).toEqual({ changed: [], unchanged: ['a'] })
        await mesh.upsert('items', [{ _id: 'a', v: 3 }])
        expect(await mesh.get('items', 'a')).toEqual({ _id: 'a', v: 3 })
        const stats = await mesh.stats()
        expect(stats.documents).toBe(1)
      })

      test('increment adds to counters, starting from 0, and upsert resets them', async () => {
        expect(await mesh.increment('stock', 'sku1', 'qty', 10)).toBe(10)
        expect(await mesh.increment('stock', 'sku1', 'qty', -3)).toBe(7)
        expect(await mesh.get('stock', 'sku1')).toEqual({ _id: 'sku1', qty: 7 })
        await mesh.upsert('stock', [{ _id: 'sku1', qty: 100, name: 'tea' }])
        expect(await mesh.increment('stock', 'sku1', 'qty', 1)).toBe(101)
        expect(await mesh.increment('stock', 'sku1', 'other', 0.5)).toBe(0.5)
        expect(await mesh.get('stock', 'sku1')).toEqual({ _id: 'sku1', qty: 101, name: 'tea', other: 0.5 })
      })

      test('increment on a non-number field fails with TYPE_MISMATCH and changes nothing', async () => {
        await mesh.upsert('stock', [{ _id: 's', name: 'tea' }])
        await expectCode(mesh.increment('stock', 's', 'name', 1), 'TYPE_MISMATCH')
        expect(await mesh.get('stock', 's')).toEqual({ _id: 's', name: 'tea' })
      })

      test('transaction commits all of its writes, or none when it throws', async () => {
        await mesh.transaction(async (tx) => {
          await tx.upsert('orders', [{ _id: 'o1', total: 5 }])
          await tx.increment('stock', 'tea', 'qty', -1)
          expect(await tx.get('orders', 'o1')).toEqual({ _id: 'o1', total: 5 })
          expect(ids(await tx.find({ collection: 'orders' }))).toEqual(['o1'])
        })
        expect(await mesh.get('stock', 'tea')).toEqual({ _id: 'tea', qty: -1 })
        const before = await mesh.currentCursor()
        await expect(
          mesh.transaction(async (tx) => {
            await tx.upsert('orders', [{ _id: 'o2', total: 7 }])
            await tx.remove('orders', ['o1'])
            throw new Error('boom')
          }),
        ).rejects.toThrow('boom')
        expect(ids(await mesh.find({ collection: 'orders' }))).toEqual(['o1'])
        expect(await mesh.currentCursor()).toBe(before)
        expect(await mesh.transaction(async () => 'value')).toBe('value')
      })
    })

    describe('queries', () => {
      const seed = () =>
        mesh.upsert('q', [
          { _id: 'a', n: 1, s: 'x', b: true, z: null, o: { city: 'Oslo' }, tags: ['t1'] },
          { _id: 'b', n: 2.5, s: 'y', b: false, o: { city: 'Rome' } },
          { _id: 'c', n: '3', s: 'x' },
          { _id: 'd', n: true, b: true },
          { _id: 'e', n: -4, s: 'é' },
        ])
      const find = async (q: Omit<Query, 'collection'>) => ids(await mesh.find({ collection: 'q', ...q }))

      test('equality, null and nested fields', async () => {
        await seed()
        expect(await find({ filter: { s: 'x' } })).toEqual(['a', 'c'])
        expect(await find({ filter: { n: 1 } })).toEqual(['a'])
        expect(await find({ filter: { n: true } })).toEqual(['d'])
        expect(await find({ filter: { z: null } })).toEqual(['a'])
        expect(await find({ filter: { 'o.city': 'Rome' } })).toEqual(['b'])
        expect(await find({ filter: { o: { city: 'Oslo' } } })).toEqual(['a'])
        expect(await find({ filter: { tags: ['t1'] } })).toEqual(['a'])
        expect(await find({ filter: { _id: 'c' } })).toEqual(['c'])
      })

      test('comparison operators match values of the same type only', async () => {
        await seed()
        expect(await find({ filter: { n: { $gt: 0 } } })).toEqual(['a', 'b'])
        expect(await find({ filter: { n: { $gte: -4, $lt: 2 } } })).toEqual(['a', 'e'])
        expect(await find({ filter: { n: { $lte: '9' } } })).toEqual(['c'])
        expect(await find({ filter: { b: { $gt: false } } })).toEqual(['a', 'd'])
        expect(await find({ filter: { s: { $gt: 'x' } } })).toEqual(['b', 'e'])
      })

      test('$eq $ne $in $nin $exists', async () => {
        await seed()
        expect(await find({ filter: { s: { $eq: 'y' } } })).toEqual(['b'])
        expect(await find({ filter: { s: { $ne: 'x' } } })).toEqual(['b', 'd', 'e'])
        expect(await find({ filter: { n: { $in: [1, '3', true] } } })).toEqual(['a', 'c', 'd'])
        expect(await find({ filter: { s: { $nin: ['x', 'y'] } } })).toEqual(['d', 'e'])
        expect(await find({ filter: { z: { $exists: true } } })).toEqual(['a'])
        expect(await find({ filter: { s: { $exists: false } } })).toEqual(['d'])
      })

      test('$and $or $not', async () => {
        await seed()
        expect(await find({ filter: { $or: [{ s: 'y' }, { b: true }] } })).toEqual(['a', 'b', 'd'])
        expect(await find({ filter: { $and: [{ s: 'x' }, { b: true }] } })).toEqual(['a'])
        expect(await find({ filter: { $not: { s: 'x' } } })).toEqual(['b', 'd', 'e'])
        expect(await find({ filter: { n: { $not: { $gt: 0 } } } })).toEqual(['c', 'd', 'e'])
        expect(await find({ filter: { s: 'x', b: true } })).toEqual(['a'])
      })

      test('orderBy sorts across types, by several keys, then by _id; limit and offset page', async () => {
        await seed()
        expect(await find({ orderBy: 'n' })).toEqual(['d', 'e', 'a', 'b', 'c'])
        expect(await find({ orderBy: { field: 'n', direction: 'desc' } })).toEqual(['c', 'b', 'a', 'e', 'd'])
        expect(await find({ orderBy: ['s', { field: 'n', direction: 'desc' }] })).toEqual(['d', 'c', 'a', 'b', 'e'])
        expect(await find({ orderBy: 'n', limit: 2 })).toEqual(['d', 'e'])
        expect(await find({ orderBy: 'n', limit: 2, offset: 2 })).toEqual(['a', 'b'])
        expect(await find({ filter: { s: 'x' }, limit: 1 })).toEqual(['a'])
        expect(await find({})).toEqual(['a', 'b', 'c', 'd', 'e'])
      })

      test('count, and indexes that do not change results', async () => {
        await seed()
        expect(await mesh.count({ collection: 'q', filter: { s: 'x' } })).toBe(2)
        expect(await mesh.count({ collection: 'q' })).toBe(5)
        expect(await mesh.count({ collection: 'empty' })).toBe(0)
        const before = await find({ filter: { s: { $in: ['x', 'é'] } }, orderBy: 's' })
        await mesh.createIndex('q', 's')
        await mesh.createIndex('q', 's')
        await mesh.createIndex('q', 'o.city')
        expect(await find({ filter: { s: { $in: ['x', 'é'] } }, orderBy: 's' })).toEqual(before)
        expect(await find({ filter: { 'o.city': 'Oslo' } })).toEqual(['a'])
      })
    })

    describe('observers', () => {
      test('deliver the initial result, then inserted, updated and removed diffs', async () => {
        await mesh.upsert('o', [{ _id: 'a', open: true, v: 1 }])
        const w = watch({ collection: 'o', filter: { open: true } }, { initial: true })
        const first = await w.next()
        expect(first.initial).toBe(true)
        expect(first.inserted).toEqual([{ _id: 'a', open: true, v: 1 }])
        await w.observer.ready

        await mesh.upsert('o', [{ _id: 'b', open: true }])
        expect(summary(await w.next())).toEqual({ inserted: ['b'], updated: [], removed: [] })
        await mesh.upsert('o', [{ _id: 'a', v: 2 }])
        const upd = await w.next()
        expect(upd.updated).toEqual([{ _id: 'a', open: true, v: 2 }])
        await mesh.upsert('o', [{ _id: 'a', open: false }])
        const left = await w.next()
        expect(left.removed).toEqual([{ _id: 'a', previous: { _id: 'a', open: true, v: 2 } }])
        await mesh.remove('o', ['b'])
        expect(summary(await w.next())).toEqual({ inserted: [], updated: [], removed: ['b'] })
        await mesh.upsert('o', [{ _id: 'c', open: true }])
        const last = await w.next()
        expect(ids(await last.results())).toEqual(['c'])
        w.observer.cancel()
      })

      test('writes outside the result are not delivered; deliveries come in commit order', async () => {
        const w = watch({ collection: 'o', filter: { open: true } })
        await w.observer.ready
        await mesh.upsert('o', [{ _id: 'x', open: false }])
        await mesh.upsert('other', [{ _id: 'y', open: true }])
        await mesh.upsert('o', [{ _id: 'z', open: true }])
        expect(summary(await w.next())).toEqual({ inserted: ['z'], updated: [], removed: [] })
        for (let i = 0; i < 20; i++) await mesh.upsert('o', [{ _id: 'z', open: true, i }])
        let seen = -1
        while (seen < 19) {
          const c = await w.next()
          const i = c.updated[0]?.i as number
          expect(i).toBeGreaterThan(seen)
          seen = i
        }
        w.observer.cancel()
      })

      test('a slow listener gets later commits coalesced, one delivery at a time', async () => {
        let active = 0
        let maxActive = 0
        let calls = 0
        const seen: string[] = []
        let release!: () => void
        const gate = new Promise<void>((r) => {
          release = r
        })
        const slow = mesh.observe({ collection: 'o' }, async (c) => {
          calls++
          active++
          maxActive = Math.max(maxActive, active)
          seen.push(...c.inserted.map((d) => d._id))
          await gate
          active--
        })
        await slow.ready
        await mesh.upsert('o', [{ _id: 'first' }])
        await waitFor(() => calls === 1, timeout)
        for (let i = 0; i < 10; i++) await mesh.upsert('o', [{ _id: `d${i}` }])
        release()
        await waitFor(() => seen.length === 11, timeout)
        expect(seen).toEqual(['first', ...Array.from({ length: 10 }, (_, i) => `d${i}`)])
        expect(calls).toBeLessThan(11)
        expect(maxActive).toBe(1)
        slow.cancel()
      })

      test('cancel stops deliveries', async () => {
        const a = watch({ collection: 'o' })
        const b = watch({ collection: 'o' })
        await mesh.upsert('o', [{ _id: '1' }])
        await a.next()
        await b.next()
        a.observer.cancel()
        a.observer.cancel()
        await mesh.upsert('o', [{ _id: '2' }])
        await b.next()
        expect(a.count).toBe(1)
        expect((await mesh.stats()).observers).toBe(1)
        b.observer[Symbol.dispose]()
        expect((await mesh.stats()).observers).toBe(0)
      })

      test('listener errors go to onError, the observer-error event and stats', async () => {
        const errors: unknown[] = []
        const events: unknown[] = []
        const off = mesh.on('observer-error', (e) => events.push(e.error))
        const failing = mesh.observe(
          { collection: 'o' },
          () => {
            throw new Error('listener failed')
          },
          { onError: (e) => errors.push(e) },
        )
        const w = watch({ collection: 'o' })
        await mesh.upsert('o', [{ _id: '1' }])
        await w.next()
        await waitFor(() => events.length === 1, timeout)
        expect((errors[0] as Error).message).toBe('listener failed')
        expect((await mesh.stats()).observerErrors).toBe(1)
        // It keeps observing.
        await mesh.upsert('o', [{ _id: '2' }])
        await w.next()
        await waitFor(() => events.length === 2, timeout)
        off()
        failing.cancel()
        w.observer.cancel()
      })

      test('limited queries deliver changes to their window', async () => {
        await mesh.upsert('o', [
          { _id: 'a', rank: 1 },
          { _id: 'b', rank: 2 },
          { _id: 'c', rank: 3 },
        ])
        const w = watch({ collection: 'o', orderBy: 'rank', limit: 2 }, { initial: true })
        expect(ids((await w.next()).inserted)).toEqual(['a', 'b'])
        await mesh.upsert('o', [{ _id: 'z', rank: 0 }])
        expect(summary(await w.next())).toEqual({ inserted: ['z'], updated: [], removed: ['b'] })
        w.observer.cancel()
      })

      test('a transaction is delivered once, after commit; a failed one never', async () => {
        const w = watch({ collection: 'o' })
        await expect(
          mesh.transaction(async (tx) => {
            await tx.upsert('o', [{ _id: 'never' }])
            throw new Error('rollback')
          }),
        ).rejects.toThrow()
        await mesh.transaction(async (tx) => {
          await tx.upsert('o', [{ _id: 't1' }])
          await tx.upsert('o', [{ _id: 't2' }])
          await tx.upsert('o', [{ _id: 't1', v: 1 }])
        })
        const c = await w.next()
        expect(c.inserted.map((d) => d._id).sort()).toEqual(['t1', 't2'])
        expect(c.inserted.find((d) => d._id === 't1')).toEqual({ _id: 't1', v: 1 })
        expect(w.count).toBe(1)
        w.observer.cancel()
      })
    })

    describe('changesSince', () => {
      test('from null returns everything; from a cursor only later changes', async () => {
        await mesh.upsert('c', [
          { _id: 'a', v: 1 },
          { _id: 'b', v: 2 },
        ])
        await mesh.upsert('other', [{ _id: 'x' }])
        const all = await mesh.changesSince(null, { collection: 'c' })
        expect(ids(all.changed).sort()).toEqual(['a', 'b'])
        expect(all.removed).toEqual([])
        expect(all.hasMore).toBe(false)
        const none = await mesh.changesSince(all.cursor, { collection: 'c' })
        expect(none).toEqual({ changed: [], removed: [], cursor: none.cursor, hasMore: false })
        await mesh.upsert('c', [{ _id: 'a', v: 10 }])
        await mesh.remove('c', ['b'])
        const later = await mesh.changesSince(all.cursor, { collection: 'c' })
        expect(later.changed).toEqual([{ _id: 'a', v: 10 }])
        expect(later.removed).toEqual(['b'])
      })

      test('honours the scope filter', async () => {
        await mesh.upsert('c', [
          { _id: 'a', branch: 1 },
          { _id: 'b', branch: 2 },
        ])
        const set = await mesh.changesSince(null, { collection: 'c', filter: { branch: 1 } })
        expect(ids(set.changed)).toEqual(['a'])
      })

      test('pages with limit and hasMore without losing anything', async () => {
        const docs = Array.from({ length: 25 }, (_, i) => ({ _id: `d${String(i).padStart(2, '0')}`, i }))
        await mesh.upsert('c', docs)
        await mesh.remove('c', ['d03'])
        const seen = new Set<string>()
        const removed: string[] = []
        let cursor: string | null = null
        for (let page = 0; page < 20; page++) {
          const set = await mesh.changesSince(cursor, { collection: 'c' }, { limit: 7 })
          expect(set.changed.length + set.removed.length).toBeLessThanOrEqual(7)
          for (const d of set.changed) seen.add(d._id)
          removed.push(...set.removed)
          cursor = set.cursor
          if (!set.hasMore) break
        }
        expect(seen.size).toBe(24)
        expect(removed).toEqual(['d03'])
      })

      test('rejects a cursor it did not issue with INVALID_CURSOR', async () => {
        for (const bad of ['garbage', 'mm1.other-site.3', '', 42 as unknown as string]) {
          await expectCode(mesh.changesSince(bad, { collection: 'c' }), 'INVALID_CURSOR')
        }
      })

      test('cursors survive a reopen', async () => {
        if (!subject.reopen) return
        await mesh.upsert('c', [{ _id: 'a', v: 1 }])
        const cursor = (await mesh.changesSince(null, { collection: 'c' })).cursor
        const store = await reopen()
        expect(await store.get('c', 'a')).toEqual({ _id: 'a', v: 1 })
        await store.upsert('c', [{ _id: 'b', v: 2 }])
        const set = await store.changesSince(cursor, { collection: 'c' })
        expect(ids(set.changed)).toEqual(['b'])
        expect(await store.currentCursor()).toBe(set.cursor)
      })
    })

    describe('bad input is rejected with a code and writes nothing', () => {
      const rejects = async (op: () => Promise<unknown>, code: string) => {
        const before = await mesh.currentCursor()
        await expectCode(op(), code)
        expect(await mesh.currentCursor()).toBe(before)
      }

      test('collection names', async () => {
        for (const c of ['a-b', '1x', 'x;drop', '', 'a.b', '__proto__x"']) {
          await rejects(() => mesh.upsert(c, [{ _id: 'a' }]), 'INVALID_COLLECTION')
          await expectCode(mesh.find({ collection: c }), 'INVALID_COLLECTION')
        }
      })

      test('field names and ids', async () => {
        await rejects(() => mesh.upsert('c', [{ _id: 'a', 'x.y': 1 }]), 'INVALID_FIELD')
        await rejects(() => mesh.upsert('c', [{ _id: 'a', $set: 1 }]), 'INVALID_FIELD')
        await rejects(() => mesh.upsert('c', [JSON.parse('{"_id":"a","__proto__":1}')]), 'INVALID_FIELD')
        await rejects(() => mesh.upsert('c', [{ _id: '' }]), 'INVALID_ID')
        await rejects(() => mesh.upsert('c', [{ _id: Number.NaN }]), 'INVALID_ID')
        await rejects(() => mesh.upsert('c', [{ v: 1 } as never]), 'INVALID_ID')
        await rejects(() => mesh.increment('c', 'a', 'x.y', 1), 'INVALID_FIELD')
      })

      test('non-JSON values', async () => {
        const cyclic: Record<string, unknown> = {}
        cyclic.self = cyclic
        const bad: unknown[] = [
          Number.NaN,
          Number.POSITIVE_INFINITY,
          10n,
          () => 1,
          Symbol('s'),
          [1, undefined],
          new Date(),
          new Map(),
          cyclic,
          { nested: { __proto__: null, ok: 1, constructor: 1 } },
        ]
        for (const v of bad) await rejects(() => mesh.upsert('c', [{ _id: 'a', v } as never]), 'INVALID_DOCUMENT')
        await rejects(() => mesh.increment('c', 'a', 'n', Number.NaN), 'INVALID_OPTIONS')
      })

      test('oversized documents', async () => {
        await rejects(() => mesh.upsert('c', [{ _id: 'big', v: 'x'.repeat(2 * 1024 * 1024) }]), 'DOC_TOO_LARGE')
      })

      test('one bad document rejects the whole batch', async () => {
        await rejects(
          () =>
            mesh.upsert('c', [
              { _id: 'ok1', v: 1 },
              { _id: 'bad', v: Number.NaN },
              { _id: 'ok2', v: 2 },
            ]),
          'INVALID_DOCUMENT',
        )
        await rejects(
          () =>
            mesh.upsert('c', [
              { _id: 'ok1', v: 1 },
              { _id: 'big', v: 'x'.repeat(2 * 1024 * 1024) },
            ]),
          'DOC_TOO_LARGE',
        )
        expect(await mesh.find({ collection: 'c' })).toEqual([])
      })

      test('malformed queries', async () => {
        const bad: unknown[] = [
          { collection: 'c', filter: { a: { $regex: 'x' } } },
          { collection: 'c', filter: { a: { $in: 'x' } } },
          { collection: 'c', filter: { $where: 'true' } },
          { collection: 'c', limit: -1 },
          { collection: 'c', orderBy: { field: 'a', direction: 'sideways' } },
          { collection: 'c', filter: 'a = 1' },
        ]
        for (const q of bad) {
          await expectCode(mesh.find(q as Query), 'INVALID_QUERY')
          expect(() => mesh.observe(q as Query, () => {})).toThrow(MeshmirrorError)
        }
        await expectCode(mesh.count({ collection: 'c', filter: { a: { $gt: {} } } } as never), 'INVALID_QUERY')
      })
    })

    describe('lifecycle', () => {
      test('close is idempotent and later calls fail with STORE_CLOSED', async () => {
        await mesh.upsert('c', [{ _id: 'a' }])
        await Promise.all([mesh.close(), mesh.close()])
        await mesh.close()
        await expectCode(mesh.upsert('c', [{ _id: 'b' }]), 'STORE_CLOSED')
        await expectCode(mesh.get('c', 'a'), 'STORE_CLOSED')
      })

      test('writes queued before close complete', async () => {
        const pending = mesh.upsert('c', [{ _id: 'a', v: 1 }])
        await mesh.close()
        await expect(pending).resolves.toEqual({ changed: ['a'], unchanged: [] })
        if (subject.reopen) {
          const store = await subject.reopen()
          opened.push(store)
          expect(await store.get('c', 'a')).toEqual({ _id: 'a', v: 1 })
        }
      })

      test('asyncDispose closes the store', async () => {
        {
          await using disposable = mesh
          await disposable.upsert('c', [{ _id: 'a' }])
        }
        await expectCode(mesh.get('c', 'a'), 'STORE_CLOSED')
      })

      test('stats count documents, tombstones and observers', async () => {
        await mesh.upsert('c', [{ _id: 'a' }, { _id: 'b' }, { _id: 'c' }])
        await mesh.remove('c', ['b'])
        const obs = mesh.observe({ collection: 'c' }, () => {})
        const stats = await mesh.stats()
        expect(stats).toMatchObject({ documents: 2, tombstones: 1, observers: 1, observerErrors: 0 })
        obs.cancel()
      })
    })
  })
}

/** Collects an observer's deliveries and hands them out one by one. */
function deliveries(mesh: MeshStore, query: Query, timeoutMs: number, options?: ObserveOptions) {
  const queue: ObserverChange[] = []
  const waiters: ((c: ObserverChange) => void)[] = []
  let count = 0
  const observer = mesh.observe(
    query,
    (change) => {
      count++
      const waiter = waiters.shift()
      if (waiter) waiter(change)
      else queue.push(change)
    },
    options,
  )
  return {
    observer,
    get count() {
      return count
    },
    next(): Promise<ObserverChange> {
      const queued = queue.shift()
      if (queued) return Promise.resolve(queued)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(deliver), 1)
          reject(new Error(`no observer delivery within ${timeoutMs} ms`))
        }, timeoutMs)
        const deliver = (c: ObserverChange) => {
          clearTimeout(timer)
          resolve(c)
        }
        waiters.push(deliver)
      })
    },
  }
}

function summary(c: ObserverChange) {
  return {
    inserted: c.inserted.map((d) => d._id),
    updated: c.updated.map((d) => d._id),
    removed: c.removed.map((d) => d._id),
  }
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error, `expected a ${code} error`).toBeInstanceOf(MeshmirrorError)
  expect((error as MeshmirrorError).code).toBe(code)
}

async function waitFor(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 5))
  }
}
