import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest'
import { type ErrorCode, MeshmirrorError, ValidationError } from '../errors.js'
import type { Document, JsonObject } from './document.js'
import type { MeshStore, MeshStoreEvents, ObserveOptions, Observer, ObserverChange } from './mesh-store.js'
import type { Query } from './query.js'

/** A store under test, as the suite's factory returns it. */
export interface ConformanceSubject {
  /** A fresh, empty, open store. */
  store: MeshStore
  /**
   * Opens the same persistence again. The suite calls it only after it
   * closed every store this subject opened. Omit it when the backend cannot
   * reopen: the persistence tests are then reported as skipped.
   */
  reopen?: () => Promise<MeshStore>
  /** Removes what the subject created. Called once, after its stores are closed. */
  cleanup?: () => Promise<void>
}

/** Makes a fresh subject; called once per test (twice by the tests that need a second store). */
export type ConformanceFactory = () => Promise<ConformanceSubject>

export interface ConformanceOptions {
  /**
   * Tests to skip, by exact title, each with the reason (shown in the
   * report). A title that names no test fails the suite, so skips cannot
   * outlive the tests they were written for.
   */
  skip?: Record<string, string>
  /** How long to wait for one observer delivery, in ms. Default 5,000. */
  deliveryTimeoutMs?: number
}

/**
 * The acceptance suite every {@link MeshStore} implementation passes: each
 * promise of the interface's documentation, checked on real data. Call it
 * at the top level of a vitest test file; every test gets a fresh subject.
 *
 * @example
 * ```ts
 * import { runMeshStoreConformance } from 'meshmirror/testing'
 *
 * runMeshStoreConformance('my backend', async () => {
 *   const dir = await mkdtemp(join(tmpdir(), 'mesh-'))
 *   return {
 *     store: await openMyStore(dir),
 *     reopen: () => openMyStore(dir),
 *     cleanup: () => rm(dir, { recursive: true }),
 *   }
 * })
 * ```
 */
export function runMeshStoreConformance(
  name: string,
  factory: ConformanceFactory,
  options: ConformanceOptions = {},
): void {
  const timeoutMs = options.deliveryTimeoutMs ?? 5_000
  const skips = new Map(Object.entries(options.skip ?? {}))
  const titles = new Set<string>()

  describe(`MeshStore conformance: ${name}`, () => {
    let subjects: { subject: ConformanceSubject; stores: MeshStore[] }[] = []
    /** The store under test; replaced by `reopen()`. */
    let mesh: MeshStore

    const open = async () => {
      const subject = await factory()
      const entry = { subject, stores: [subject.store] }
      subjects.push(entry)
      return entry
    }

    beforeEach(async () => {
      mesh = (await open()).subject.store
    })

    afterEach(async () => {
      const done = subjects
      subjects = []
      const failures: unknown[] = []
      for (const { subject, stores } of done) {
        for (const s of stores) await s.close().catch((e: unknown) => failures.push(e))
        await subject.cleanup?.().catch((e: unknown) => failures.push(e))
      }
      if (failures.length > 0) throw new AggregateError(failures, 'closing or cleaning up the subject failed')
    })

    const test = (title: string, fn: (ctx: TestContext) => Promise<void>) => {
      if (titles.has(title)) throw new Error(`conformance suite: duplicate test title ${JSON.stringify(title)}`)
      titles.add(title)
      const reason = skips.get(title)
      if (reason === undefined) it(title, fn)
      else it.skip(`${title} (skipped: ${reason})`, fn)
    }

    /** Closes the store under test and opens its persistence again; skips the test when unsupported. */
    const reopen = async (ctx: TestContext): Promise<MeshStore> => {
      const entry = subjects[0]!
      if (!entry.subject.reopen) ctx.skip('the subject does not support reopen')
      for (const s of entry.stores) await s.close()
      mesh = await entry.subject.reopen!()
      entry.stores.push(mesh)
      return mesh
    }

    const watch = (query: Query, opts?: ObserveOptions) => new Watch(mesh, query, timeoutMs, opts)
    const inbox = <T>(what: string) => new Inbox<T>(timeoutMs, what)

    describe('documents', () => {
      test('upsert merges fields by default and replaces on request', async () => {
        await mesh.upsert('items', [{ _id: 'a', name: 'tea', qty: 1 }])
        await mesh.upsert('items', [{ _id: 'a', price: 3 }])
        expect(await mesh.get('items', 'a')).toEqual({ _id: 'a', name: 'tea', qty: 1, price: 3 })
        await mesh.upsert('items', [{ _id: 'a', name: 'coffee' }], { mode: 'replace' })
        expect(await mesh.get('items', 'a')).toEqual({ _id: 'a', name: 'coffee' })
        await mesh.upsert('items', [{ _id: 'a', name: 'coffee' }], { mode: 'merge' })
        expect(await mesh.get('items', 'a')).toEqual({ _id: 'a', name: 'coffee' })
      })

      test('fields set to undefined are absent; null is a value', async () => {
        await mesh.upsert('items', [{ _id: 'a', keep: 1, gone: 2 }])
        await mesh.upsert('items', [{ _id: 'a', keep: undefined, note: null }])
        expect(await mesh.get('items', 'a')).toEqual({ _id: 'a', keep: 1, gone: 2, note: null })
        await mesh.upsert('items', [{ _id: 'a', keep: 1, gone: undefined }], { mode: 'replace' })
        expect(await mesh.get('items', 'a')).toEqual({ _id: 'a', keep: 1 })
      })

      test('documents round-trip exactly', async () => {
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

      test('numeric ids are normalised to strings', async () => {
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

      test('writing equal values is not a change', async () => {
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

      test('rewriteEqual writes equal values as a change', async () => {
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

      test('remove leaves the document gone, and a later write re-creates it', async () => {
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

      test('collections are separate namespaces', async () => {
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

    describe('counters', () => {
      test('increment adds to counters, starting from 0, and upsert resets them', async () => {
        expect(await mesh.increment('stock', 'sku1', 'qty', 10)).toBe(10)
        expect(await mesh.increment('stock', 'sku1', 'qty', -3)).toBe(7)
        expect(await mesh.get('stock', 'sku1')).toEqual({ _id: 'sku1', qty: 7 })
        await mesh.upsert('stock', [{ _id: 'sku1', qty: 100, name: 'tea' }])
        expect(await mesh.increment('stock', 'sku1', 'qty', 1)).toBe(101)
        expect(await mesh.increment('stock', 'sku1', 'other', 0.5)).toBe(0.5)
        expect(await mesh.get('stock', 'sku1')).toEqual({ _id: 'sku1', qty: 101, name: 'tea', other: 0.5 })
      })

      test('increment on a missing document or field starts at 0', async () => {
        expect(await mesh.increment('stock', 'new', 'qty', 3)).toBe(3)
        expect(await mesh.get('stock', 'new')).toEqual({ _id: 'new', qty: 3 })
        await mesh.upsert('stock', [{ _id: 'named', name: 'tea' }])
        expect(await mesh.increment('stock', 'named', 'qty', -2)).toBe(-2)
        expect(await mesh.get('stock', 'named')).toEqual({ _id: 'named', name: 'tea', qty: -2 })
        await mesh.remove('stock', ['named'])
        expect(await mesh.increment('stock', 'named', 'qty', 5)).toBe(5)
        expect((await mesh.get('stock', 'named'))?.qty).toBe(5)
      })

      test('a merge that does not mention the counter keeps it; replace drops it', async () => {
        await mesh.increment('stock', 's', 'qty', 4)
        await mesh.upsert('stock', [{ _id: 's', name: 'tea' }])
        expect(await mesh.get('stock', 's')).toEqual({ _id: 's', qty: 4, name: 'tea' })
        expect(await mesh.increment('stock', 's', 'qty', 1)).toBe(5)
        await mesh.upsert('stock', [{ _id: 's', name: 'tea' }], { mode: 'replace' })
        expect(await mesh.get('stock', 's')).toEqual({ _id: 's', name: 'tea' })
        expect(await mesh.increment('stock', 's', 'qty', 1)).toBe(1)
      })

      test('increment on a non-number field fails with TYPE_MISMATCH and changes nothing', async () => {
        await mesh.upsert('stock', [{ _id: 's', name: 'tea', off: null, list: [1] }])
        const before = await mesh.currentCursor()
        await expectCode(mesh.increment('stock', 's', 'name', 1), 'TYPE_MISMATCH')
        await expectCode(mesh.increment('stock', 's', 'off', 1), 'TYPE_MISMATCH')
        await expectCode(mesh.increment('stock', 's', 'list', 1), 'TYPE_MISMATCH')
        expect(await mesh.get('stock', 's')).toEqual({ _id: 's', name: 'tea', off: null, list: [1] })
        expect(await mesh.currentCursor()).toBe(before)
      })
    })

    describe('transactions', () => {
      test('transaction commits all of its writes, or none when it throws', async () => {
        const value = await mesh.transaction(async (tx) => {
          await tx.upsert('orders', [{ _id: 'o1', total: 5 }])
          expect(await tx.increment('stock', 'tea', 'qty', -1)).toBe(-1)
          expect(await tx.get('orders', 'o1')).toEqual({ _id: 'o1', total: 5 })
          expect(ids(await tx.find({ collection: 'orders' }))).toEqual(['o1'])
          return 'value'
        })
        expect(value).toBe('value')
        expect(await mesh.get('orders', 'o1')).toEqual({ _id: 'o1', total: 5 })
        expect(await mesh.get('stock', 'tea')).toEqual({ _id: 'tea', qty: -1 })
        const before = await mesh.currentCursor()
        const failure = new Error('boom')
        await expect(
          mesh.transaction(async (tx) => {
            await tx.upsert('orders', [{ _id: 'o2', total: 7 }])
            await tx.remove('orders', ['o1'])
            await tx.increment('stock', 'tea', 'qty', -1)
            throw failure
          }),
        ).rejects.toBe(failure)
        expect(await mesh.find({ collection: 'orders' })).toEqual([{ _id: 'o1', total: 5 }])
        expect(await mesh.get('stock', 'tea')).toEqual({ _id: 'tea', qty: -1 })
        expect(await mesh.currentCursor()).toBe(before)
      })

      test('a rejected batch inside a transaction writes nothing of itself, the rest commits', async () => {
        await mesh.transaction(async (tx) => {
          await tx.upsert('orders', [{ _id: 'o1', total: 1 }])
          await expectCode(
            tx.upsert('orders', [
              { _id: 'o2', total: 2 },
              { _id: 'o3', total: Number.NaN },
            ]),
            'INVALID_DOCUMENT',
          )
          expect(ids(await tx.find({ collection: 'orders' }))).toEqual(['o1'])
        })
        expect(await mesh.find({ collection: 'orders' })).toEqual([{ _id: 'o1', total: 1 }])
      })
    })

    describe('queries', () => {
      const seed = () =>
        mesh.upsert('q', [
          { _id: 'a', n: 1, s: 'x', b: true, z: null, o: { city: 'Oslo', zip: '0150' }, tags: ['t1'] },
          { _id: 'b', n: 2.5, s: 'y', b: false, o: { city: 'Rome' } },
          { _id: 'c', n: '3', s: 'x', o: { city: 'Oslo', geo: { lat: 59 } } },
          { _id: 'd', n: true, b: true },
          { _id: 'e', n: -4, s: 'é', o: 'flat' },
        ])
      const find = async (q: Omit<Query, 'collection'>) => ids(await mesh.find({ collection: 'q', ...q }))

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

      test('orderBy sorts by several keys, ascending or descending, ties by _id', async () => {
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

      test('sorting across types: missing/null < false < true < numbers < strings < arrays/objects', async () => {
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

      test('count matches find', async () => {
        await seed()
        expect(await mesh.count({ collection: 'q' })).toBe(5)
        expect(await mesh.count({ collection: 'q', filter: { s: 'x' } })).toBe(2)
        expect(await mesh.count({ collection: 'q', filter: { s: { $ne: 'x' } } })).toBe(3)
        expect(await mesh.count({ collection: 'q', filter: { o: { $eq: { city: 'Rome' } } } })).toBe(1)
        expect(await mesh.count({ collection: 'empty' })).toBe(0)
        await mesh.remove('q', ['a'])
        expect(await mesh.count({ collection: 'q', filter: { s: 'x' } })).toBe(1)
      })

      test('createIndex is idempotent and does not change results', async () => {
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

    describe('observers', () => {
      test('deliver the initial result, then inserted, updated and removed diffs', async () => {
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

      test('an initial delivery is made for an empty result too', async () => {
        const w = watch({ collection: 'o' }, { initial: true })
        await w.observer.ready
        expect(w.received).toBe(1)
        expect(await w.next()).toMatchObject({ initial: true, inserted: [], updated: [], removed: [] })
        await mesh.upsert('o', [{ _id: 'a' }])
        expect(summary(await w.next())).toEqual({ inserted: ['a'], updated: [], removed: [] })
      })

      test('writes that do not change the result are not delivered', async () => {
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

      test('deliveries come in commit order', async () => {
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

      test('a slow listener gets one delivery at a time, later commits coalesced into the next', async () => {
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

      test('cancel stops deliveries', async () => {
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

      test('cancel during a delivery drops the changes that were waiting', async () => {
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

      test('listener errors go to onError, the observer-error event and stats', async () => {
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

      test('limited queries deliver changes to their window', async () => {
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

      test('a transaction is delivered once, after commit; a failed one never', async () => {
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

    describe('changesSince', () => {
      test('from null returns everything; from a cursor only later changes', async () => {
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

      test('reports each document once, in the order of its latest change', async () => {
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

      test('honours the scope filter', async () => {
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

      test('pages with limit and hasMore without losing anything', async () => {
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

      test('currentCursor marks the latest change', async () => {
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

      test('rejects a cursor it did not issue with INVALID_CURSOR', async () => {
        await mesh.upsert('c', [{ _id: 'a' }])
        const foreign = (await open()).subject.store
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

      test('cursors survive a reopen', async (ctx) => {
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

    describe('bad input is rejected with a code and writes nothing', () => {
      const rejects = async (op: () => Promise<unknown>, code: ErrorCode) => {
        const before = await mesh.currentCursor()
        await expectCode(op(), code)
        expect(await mesh.currentCursor()).toBe(before)
      }

      test('collection names', async () => {
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

      test('field names', async () => {
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

      test('ids', async () => {
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

      test('non-JSON values', async () => {
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

      test('oversized documents fail with DOC_TOO_LARGE', async () => {
        await rejects(() => mesh.upsert('c', [{ _id: 'big', v: 'x'.repeat(2 * 1024 * 1024) }]), 'DOC_TOO_LARGE')
        const many: JsonObject = {}
        for (let i = 0; i < 2048; i++) many[`f${i}`] = 'y'.repeat(1024)
        await rejects(() => mesh.upsert('c', [{ _id: 'wide', ...many }]), 'DOC_TOO_LARGE')
        await mesh.upsert('c', [{ _id: 'grow', v: 'small' }])
        await rejects(() => mesh.upsert('c', [{ _id: 'grow', w: 'x'.repeat(2 * 1024 * 1024) }]), 'DOC_TOO_LARGE')
        expect(await mesh.get('c', 'grow')).toEqual({ _id: 'grow', v: 'small' })
      })

      test('one bad document rejects the whole batch', async () => {
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

      test('malformed queries fail with INVALID_QUERY', async () => {
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

    describe('lifecycle and persistence', () => {
      test('close is idempotent and later calls fail with STORE_CLOSED', async () => {
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

      test('closing cancels observers; cancelling one afterwards is harmless', async () => {
        const w = watch({ collection: 'c' })
        await w.observer.ready
        await mesh.close()
        w.observer.cancel()
        w.observer[Symbol.dispose]()
        expect(w.received).toBe(0)
      })

      test('writes queued before close complete', async (ctx) => {
        const pending = mesh.upsert('c', [{ _id: 'a', v: 1 }])
        const counted = mesh.increment('c', 'n', 'qty', 2)
        await mesh.close()
        await expect(pending).resolves.toEqual({ changed: ['a'], unchanged: [] })
        await expect(counted).resolves.toBe(2)
        if (!subjects[0]!.subject.reopen) return // What follows checks they were persisted.
        const store = await reopen(ctx)
        expect(await store.get('c', 'a')).toEqual({ _id: 'a', v: 1 })
        expect(await store.get('c', 'n')).toEqual({ _id: 'n', qty: 2 })
      })

      test('documents, removals, counters and indexes survive a reopen', async (ctx) => {
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

      test('a store that keeps conflicts lists none for its own writes, refuses a bad query, and fails once closed', async (ctx) => {
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

      test('asyncDispose closes the store', async () => {
        {
          await using disposable = mesh
          await disposable.upsert('c', [{ _id: 'a' }])
        }
        await expectCode(mesh.get('c', 'a'), 'STORE_CLOSED')
        await mesh.close()
      })

      test('stats count documents, tombstones and observers', async () => {
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
  })

  if (skips.size > 0) {
    it(`${name}: every skipped conformance test exists`, () => {
      expect([...skips.keys()].filter((title) => !titles.has(title))).toEqual([])
    })
  }
}

/** Values pushed by callbacks, read in order; a read waits for the next one, up to a deadline. */
class Inbox<T> {
  private readonly queue: T[] = []
  private readonly waiters: ((item: T) => void)[] = []
  /** How many items were pushed in all. */
  received = 0

  constructor(
    private readonly timeoutMs: number,
    private readonly what: string,
  ) {}

  readonly push = (item: T): void => {
    this.received++
    const waiter = this.waiters.shift()
    if (waiter) waiter(item)
    else this.queue.push(item)
  }

  next(): Promise<T> {
    if (this.queue.length > 0) return Promise.resolve(this.queue.shift() as T)
    return new Promise((resolve, reject) => {
      const deliver = (item: T) => {
        clearTimeout(timer)
        resolve(item)
      }
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(deliver), 1)
        reject(new Error(`no ${this.what} within ${this.timeoutMs} ms`))
      }, this.timeoutMs)
      this.waiters.push(deliver)
    })
  }
}

/** An observer whose deliveries are read one by one. */
class Watch {
  readonly observer: Observer
  private readonly inbox: Inbox<ObserverChange>

  constructor(mesh: MeshStore, query: Query, timeoutMs: number, options?: ObserveOptions) {
    this.inbox = new Inbox(timeoutMs, `observer delivery for ${JSON.stringify(query)}`)
    this.observer = mesh.observe(query, this.inbox.push, options)
  }

  /** Deliveries made so far, read or not. */
  get received(): number {
    return this.inbox.received
  }

  /** The next delivery. */
  next(): Promise<ObserverChange> {
    return this.inbox.next()
  }

  /** Reads deliveries until one satisfies `done`, and returns it. */
  async until(done: (c: ObserverChange) => boolean): Promise<ObserverChange> {
    for (;;) {
      const c = await this.next()
      if (done(c)) return c
    }
  }
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((r) => {
    resolve = r
  })
  return { promise, resolve }
}

/** Lets every callback already queued on the event loop run once. */
function turn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

function ids(docs: readonly { _id: string }[]): string[] {
  return docs.map((d) => d._id)
}

function summary(c: ObserverChange) {
  return { inserted: ids(c.inserted), updated: ids(c.updated), removed: ids(c.removed) }
}

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const outcome = await promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  )
  if (!('error' in outcome)) throw new Error(`expected a ${code} error, got the result ${safeJson(outcome.value)}`)
  expect(outcome.error, `expected a ${code} error`).toBeInstanceOf(MeshmirrorError)
  expect((outcome.error as MeshmirrorError).code, String(outcome.error)).toBe(code)
}

function expectThrowsCode(fn: () => unknown, code: ErrorCode): void {
  let thrown: unknown
  try {
    const result = fn()
    if (result && typeof result === 'object' && 'cancel' in result) (result as Observer).cancel()
  } catch (e) {
    thrown = e
  }
  expect(thrown, `expected a ${code} error`).toBeInstanceOf(MeshmirrorError)
  expect((thrown as MeshmirrorError).code, String(thrown)).toBe(code)
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}
