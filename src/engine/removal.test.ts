import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { STORE_FILE } from './database.js'
import { openBuiltinStore } from './open-builtin-store.js'
import type { BuiltinMesh } from './types.js'

const dirs: string[] = []
const open: BuiltinMesh[] = []
afterEach(async () => {
  for (const m of open.splice(0)) await m.close()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

async function replica(siteId: string, now?: () => number): Promise<BuiltinMesh> {
  const dir = mkdtempSync(join(tmpdir(), 'mm-removal-'))
  dirs.push(dir)
  const m = await openBuiltinStore({ dir, siteId, ...(now ? { now } : {}) })
  open.push(m)
  return m
}

async function pull(from: BuiltinMesh, to: BuiltinMesh): Promise<void> {
  const chunk = await from.changesFor(await to.versionVector(), 0, 1000)
  await to.applyRemote(chunk.changes, { from: from.siteId, cursor: chunk.cursor, versionVector: chunk.versionVector })
}

describe('a removal and writes concurrent with it', () => {
  it('the removal wins over an update made without seeing it, whatever the clocks: no fragment comes back', async () => {
    const a = await replica('a')
    const b = await replica('b')
    await a.upsert('orders', [{ _id: 'o1', total: 5, status: 'open' }])
    await pull(a, b)
    await a.remove('orders', ['o1'])
    // B's update is later by clock than A's removal, but B never saw the removal.
    await b.upsert('orders', [{ _id: 'o1', status: 'paid' }])
    await pull(a, b)
    await pull(b, a)
    expect(await a.get('orders', 'o1')).toBeUndefined()
    expect(await b.get('orders', 'o1')).toBeUndefined()
    expect(await a.find({ collection: 'orders' })).toEqual(await b.find({ collection: 'orders' }))
  })

  it('a write made after seeing the removal creates the document again, with only what it sets', async () => {
    const a = await replica('a')
    const b = await replica('b')
    await a.upsert('orders', [{ _id: 'o1', total: 5, status: 'open' }])
    await pull(a, b)
    await a.remove('orders', ['o1'])
    await pull(a, b)
    await b.upsert('orders', [{ _id: 'o1', status: 'new' }])
    await pull(b, a)
    expect(await a.get('orders', 'o1')).toEqual({ _id: 'o1', status: 'new' })
    expect(await b.get('orders', 'o1')).toEqual({ _id: 'o1', status: 'new' })
  })

  it('an increment on a removed document creates it again; one on a live document does not outlive a removal', async () => {
    const a = await replica('a')
    const b = await replica('b')
    await a.upsert('stock', [{ _id: 'tea', qty: 10 }])
    await pull(a, b)
    await a.remove('stock', ['tea'])
    await b.increment('stock', 'tea', 'qty', -1)
    await pull(a, b)
    await pull(b, a)
    expect(await a.get('stock', 'tea')).toBeUndefined()
    expect(await b.get('stock', 'tea')).toBeUndefined()
    await b.increment('stock', 'tea', 'qty', 3)
    await pull(b, a)
    expect(await a.get('stock', 'tea')).toEqual({ _id: 'tea', qty: 3 })
  })

  it('keeps the values of fields written concurrently with a removal, so every replica shows the same document when it is created again', async () => {
    // Each write a millisecond after the one before, so clocks order them as they are made.
    let t = 1_700_000_000_000
    const now = () => t
    const a = await replica('a', now)
    const b = await replica('b', now)
    const c = await replica('c', now)
    await a.upsert('docs', [{ _id: 'd', f0: 1 }])
    t++
    await pull(a, c)
    await pull(a, b)
    await c.remove('docs', ['d'])
    t++
    await a.upsert('docs', [{ _id: 'd', note: 'a' }]) // concurrent with the removal, and later
    t++
    await pull(a, b) // b holds the update while the document is live
    await pull(c, a) // a learns the removal: removed there, its fields kept
    await a.upsert('docs', [{ _id: 'd', f0: 2 }]) // created again
    for (let i = 0; i < 2; i++)
      for (const [x, y] of [
        [a, b],
        [b, c],
        [c, a],
        [a, c],
        [c, b],
        [b, a],
      ] as const)
        await pull(x, y)
    const doc = await a.get('docs', 'd')
    expect(doc).toEqual({ _id: 'd', f0: 2, note: 'a' })
    expect(await b.get('docs', 'd')).toEqual(doc)
    expect(await c.get('docs', 'd')).toEqual(doc)
  })
})

describe('counting a collection with removed documents', () => {
  it('counts live documents only, in a store made before its index of removed documents too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mm-removal-'))
    dirs.push(dir)
    let m = await openBuiltinStore({ dir, siteId: 'a' })
    await m.upsert(
      'items',
      Array.from({ length: 30 }, (_, i) => ({ _id: `i${i}`, n: i })),
    )
    await m.upsert('other', [{ _id: 'o1' }, { _id: 'o2' }])
    await m.remove('items', ['i1', 'i2', 'i3'])
    await m.remove('other', ['o1'])
    const expectCounts = async (mesh: BuiltinMesh) => {
      expect(await mesh.count({ collection: 'items' })).toBe(27)
      expect(await mesh.count({ collection: 'other' })).toBe(1)
      expect(await mesh.count({ collection: 'none' })).toBe(0)
      expect(await mesh.count({ collection: 'items', filter: { n: { $gte: 0 } } })).toBe(27)
    }
    await expectCounts(m)
    await m.close()
    // A store from a build without the index: it is made on open, from what the table holds.
    const db = new Database(join(dir, STORE_FILE))
    db.exec('DROP INDEX docs_removed')
    db.close()
    m = await openBuiltinStore({ dir, siteId: 'a' })
    open.push(m)
    await expectCounts(m)
    await m.upsert('items', [{ _id: 'i1', n: 1 }])
    await m.remove('items', ['i4'])
    expect(await m.count({ collection: 'items' })).toBe(27)
  })
})
