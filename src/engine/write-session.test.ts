import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, expect, it } from 'vitest'
import { STORE_FILE } from './database.js'
import { applyUpsert, decodeState, encodeState, mergeStates, statesEqual } from './doc-state.js'
import { openBuiltinStore } from './open-builtin-store.js'
import type { DocMeta, RemoteChange } from './types.js'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

it('stores a new document exactly as the general merge path encodes it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mm-ws-'))
  dirs.push(dir)
  const mesh = await openBuiltinStore({ dir, siteId: 'till' })
  const fields = { name: 'tea', qty: 3, tags: ['a'], nested: { x: null }, ok: false }
  // Batches of 16 or more read stored rows in one query; both sizes take the new-document path.
  await mesh.upsert('items', [{ _id: 'one', ...fields }])
  await mesh.upsert(
    'items',
    Array.from({ length: 20 }, (_, i) => ({ _id: `b${i}`, ...fields })),
  )
  await mesh.close()

  const db = new Database(join(dir, STORE_FILE), { readonly: true })
  const rows = db.prepare('SELECT seq, id, doc, meta FROM docs').all() as {
    seq: number
    id: string
    doc: string
    meta: string
  }[]
  db.close()
  expect(rows).toHaveLength(21)
  for (const row of rows) {
    const meta = JSON.parse(row.meta) as DocMeta
    const clock = meta.t[0] as string
    const expected = encodeState(row.id, applyUpsert(undefined, fields, false, { site: 'till', clock, seq: row.seq })!)
    expect(JSON.parse(row.doc)).toEqual(expected.doc)
    expect(meta).toEqual(expected.meta)
    expect(statesEqual(decodeState(JSON.parse(row.doc), meta), decodeState(expected.doc, expected.meta))).toBe(true)
  }
})

it('merges every change of a received chunk, several to one document included, in chunks read either way', async () => {
  const open = async (siteId: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'mm-ws-'))
    dirs.push(dir)
    return openBuiltinStore({ dir, siteId })
  }
  const [a, b] = [await open('sitea'), await open('siteb')]
  for (const size of [3, 40]) {
    const r = await open(`recv${size}`)
    const c = `c${size}`
    const ids = Array.from({ length: size }, (_, i) => `d${i}`)
    await a.upsert(
      c,
      ids.map((_id) => ({ _id, n: 0, left: 'a' })),
    )
    await r.applyRemote((await a.changesFor({}, 0, 1000)).changes)
    // Concurrent updates of different fields on two sites, delivered in one chunk, one after the other.
    await b.applyRemote((await a.changesFor({}, 0, 1000)).changes)
    await a.upsert(
      c,
      ids.map((_id) => ({ _id, left: 'a2' })),
    )
    await b.upsert(
      c,
      ids.map((_id) => ({ _id, n: 1 })),
    )
    const fromA = (await a.changesFor(await r.versionVector(), 0, 1000)).changes.filter((x) => x.collection === c)
    const fromB = (await b.changesFor(await r.versionVector(), 0, 1000)).changes.filter((x) => x.collection === c)
    const chunk = [...fromA, ...fromB, fromA[0]!]
    const result = await r.applyRemote(chunk)
    expect(result).toMatchObject({ applied: 2 * size, unchanged: 1 })
    for (const _id of ids) expect(await r.get(c, _id)).toEqual({ _id, n: 1, left: 'a2' })
    await r.close()
  }
  await a.close()
  await b.close()
})

it('stores a received new document exactly as the general merge path stores it, plain creations included', async () => {
  const open = async (siteId: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'mm-ws-'))
    dirs.push(dir)
    return { dir, mesh: await openBuiltinStore({ dir, siteId }) }
  }
  const src = await open('source')
  await src.mesh.upsert(
    'items',
    Array.from({ length: 30 }, (_, i) => ({ _id: `p${i}`, name: `n${i}`, nested: { a: [i] } })),
  )
  await src.mesh.upsert('items', [{ _id: 'updated', a: 1, b: 1 }])
  await src.mesh.upsert('items', [{ _id: 'updated', b: 2 }])
  await src.mesh.increment('items', 'counted', 'n', 3)
  await src.mesh.upsert('items', [{ _id: 'gone', a: 1 }])
  await src.mesh.remove('items', ['gone'])
  const changes: RemoteChange[] = [
    ...(await src.mesh.changesFor({}, 0, 1000)).changes,
    // The same shape, but _id not first: stored with _id first, as the merge path writes it.
    {
      collection: 'items',
      id: 'late',
      doc: { x: 1, _id: 'late' },
      meta: { t: ['0000000000001abcdefghijklm'], i: 0, f: {}, v: { other: 1 } },
    },
  ]
  const dst = await open('dest')
  const seen: string[] = []
  dst.mesh.observe({ collection: 'items' }, (c) => {
    for (const d of c.inserted) seen.push(d._id)
  })
  expect(await dst.mesh.applyRemote(changes)).toMatchObject({ applied: changes.length, unchanged: 0 })
  await new Promise((r) => setTimeout(r, 50))
  await dst.mesh.close()
  await src.mesh.close()
  expect(seen.sort()).toEqual(
    changes
      .filter((c) => c.doc !== null)
      .map((c) => c.id)
      .sort(),
  )

  const db = new Database(join(dst.dir, STORE_FILE), { readonly: true })
  const rows = new Map(
    (db.prepare('SELECT id, doc, meta FROM docs').all() as { id: string; doc: string | null; meta: string }[]).map(
      (r) => [r.id, r],
    ),
  )
  db.close()
  for (const c of changes) {
    const incoming = decodeState(c.doc, c.meta)
    const expected = encodeState(c.id, mergeStates(incoming, incoming))
    const row = rows.get(c.id)!
    expect(row.doc).toBe(expected.doc === null ? null : JSON.stringify(expected.doc))
    expect(JSON.parse(row.meta)).toEqual(JSON.parse(JSON.stringify(expected.meta)))
  }
})

it('merges a received plain creation of a document the store holds already, without using up a sequence number', async () => {
  const open = async (siteId: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'mm-ws-'))
    dirs.push(dir)
    return openBuiltinStore({ dir, siteId })
  }
  const [a, b, c] = [await open('sitea'), await open('siteb'), await open('sitec')]
  // The same id created on three devices, each once: every change is a plain creation.
  await a.upsert('items', [{ _id: 'x', from: 'a' }])
  await b.upsert('items', [{ _id: 'x', from: 'b', more: 1 }])
  await c.upsert('items', [{ _id: 'x', from: 'c' }])
  const fromA = (await a.changesFor({}, 0, 100)).changes
  const fromB = (await b.changesFor({}, 0, 100)).changes
  const fromC = (await c.changesFor({}, 0, 100)).changes
  // Merged with what the store holds (not stored as received), in the one sequence number it took.
  expect(await a.applyRemote(fromB)).toEqual({
    applied: 1,
    unchanged: 0,
    asReceived: 0,
    sequences: { after: 1, upTo: 2 },
  })
  expect((await a.stats()).sequence).toBe(2)
  // Delivered again: nothing changes.
  expect(await a.applyRemote(fromB)).toMatchObject({ applied: 0, unchanged: 1 })
  expect((await a.stats()).sequence).toBe(2)
  // Two creations of one id in one call: the second merges into the first.
  expect(await b.applyRemote([...fromC, ...fromA])).toMatchObject({ applied: 2, unchanged: 0 })
  await a.applyRemote(fromC)
  await c.applyRemote([...fromA, ...fromB])
  const docs = await Promise.all([a, b, c].map((m) => m.get('items', 'x')))
  expect(docs[0]).toBeDefined()
  expect(docs[1]).toEqual(docs[0])
  expect(docs[2]).toEqual(docs[0])
  // Each store recorded the two creations that lost.
  for (const m of [a, b, c]) expect(await m.conflictCount({ collection: 'items' })).toBe(2)
  for (const m of [a, b, c]) await m.close()
})

it('gives a peer exactly the changes it lacks, walking past what it holds a bounded stretch per call', async () => {
  const open = async (siteId: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'mm-ws-'))
    dirs.push(dir)
    return openBuiltinStore({ dir, siteId })
  }
  const a = await open('sitea')
  const b = await open('siteb')
  await b.upsert(
    'items',
    Array.from({ length: 6000 }, (_, i) => ({ _id: `b${i}`, n: i })),
  )
  await a.applyRemote((await b.changesFor({}, 0, 10_000)).changes)
  await a.upsert('items', [{ _id: 'mine', n: 1 }])
  await a.upsert('items', [{ _id: 'b5', n: -5 }])
  const bHolds = await b.versionVector()
  // A peer holding b's writes lacks only a's two: found behind 6,000 rows it holds, over as many calls as it takes.
  const got: string[] = []
  let after = 0
  for (let calls = 0; ; calls++) {
    expect(calls).toBeLessThan(10)
    const chunk = await a.changesFor(bHolds, after, 100)
    expect(chunk.cursor).toBeGreaterThanOrEqual(after)
    got.push(...chunk.changes.map((c) => c.id))
    after = chunk.cursor
    if (chunk.complete) {
      expect(chunk.versionVector).toEqual(await a.versionVector())
      break
    }
  }
  expect(got).toEqual(['mine', 'b5'])
  // A peer holding nothing gets everything, a chunk at a time, in sequence order.
  const all: string[] = []
  after = 0
  for (;;) {
    const chunk = await a.changesFor({}, after, 1000)
    expect(chunk.changes.length).toBeLessThanOrEqual(1000)
    all.push(...chunk.changes.map((c) => c.id))
    after = chunk.cursor
    if (chunk.complete) break
  }
  expect(all).toHaveLength(6001)
  expect(all.slice(-2)).toEqual(['mine', 'b5'])
  await a.close()
  await b.close()
})

it('tells observers of a commit right after it, before the next turn of the event loop, one delivery per commit', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mm-ws-'))
  dirs.push(dir)
  const mesh = await openBuiltinStore({ dir, siteId: 'till' })
  const seen: string[][] = []
  mesh.observe({ collection: 'items' }, (c) => {
    seen.push(c.inserted.map((d) => d._id))
  })
  // Queued before the write: with delivery a turn later, this would run first.
  const turn = new Promise<number>((resolve) => setImmediate(() => resolve(seen.length)))
  await mesh.upsert('items', [{ _id: 'a' }, { _id: 'b' }])
  expect(await turn).toBe(1)
  expect(seen).toEqual([['a', 'b']])
  await mesh.close()
})

it('tells which applied documents are stored exactly as received, and the sequence numbers it gave them', async () => {
  const open = async (siteId: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'mm-ws-'))
    dirs.push(dir)
    return openBuiltinStore({ dir, siteId })
  }
  const [a, b] = [await open('sitea'), await open('siteb')]
  await a.upsert('items', [
    { _id: 'x', n: 1 },
    { _id: 'y', n: 1 },
  ])
  await b.upsert('items', [{ _id: 'z', n: 1 }])
  const fromA = (await a.changesFor({}, 0, 100)).changes
  const before = (await b.stats()).sequence
  // New here: stored as they came.
  const first = await b.applyRemote(fromA)
  expect(first).toMatchObject({ applied: 2, unchanged: 0, asReceived: 2 })
  expect(first.sequences).toEqual({ after: before, upTo: before + 2 })
  expect(await b.changesFor({}, first.sequences.after, 100)).toMatchObject({
    changes: fromA.map((c) => ({ id: c.id, doc: c.doc, meta: c.meta })),
  })
  // A's later state of y holds every write of B's: stored as it came, through the general merge.
  await a.upsert('items', [{ _id: 'y', n: 2 }])
  const y = (await a.changesFor({}, 0, 100)).changes.filter((c) => c.id === 'y')
  expect(await b.applyRemote(y)).toMatchObject({ applied: 1, asReceived: 1 })
  expect(await b.get('items', 'y')).toEqual({ _id: 'y', n: 2 })
  // A's later state of x, while B changed x too: the merge is neither side's state.
  await a.upsert('items', [{ _id: 'x', n: 2 }])
  await b.upsert('items', [{ _id: 'x', m: 5 }])
  const later = (await a.changesFor({}, 0, 100)).changes.filter((c) => c.id === 'x')
  const merged = await b.applyRemote(later)
  expect(merged).toMatchObject({ applied: 1, asReceived: 0 })
  expect(merged.sequences.upTo - merged.sequences.after).toBe(1)
  expect(await b.get('items', 'x')).toEqual({ _id: 'x', n: 2, m: 5 })
  // Nothing new: no sequence number used.
  const again = await b.applyRemote(later)
  expect(again).toMatchObject({ applied: 0, unchanged: 1, asReceived: 0 })
  expect(again.sequences.upTo).toBe(again.sequences.after)
  await a.close()
  await b.close()
})

it('inserts runs of received plain creations many rows a statement, with the rows and sequence numbers one by one gives', async () => {
  const open = async (siteId: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'mm-ws-'))
    dirs.push(dir)
    return { dir, mesh: await openBuiltinStore({ dir, siteId }) }
  }
  const [a, b, c] = [await open('sitea'), await open('siteb'), await open('sitec')]
  await a.mesh.upsert(
    'items',
    Array.from({ length: 150 }, (_, i) => ({ _id: `d${i}`, n: i })),
  )
  await b.mesh.upsert('items', [{ _id: 'held', from: 'b' }])
  await c.mesh.upsert('items', [{ _id: 'held', from: 'c' }])
  await c.mesh.upsert('other', [{ _id: 'o', n: 1 }])
  const fromA = (await a.mesh.changesFor({}, 0, 1000)).changes
  const fromB = (await b.mesh.changesFor({}, 0, 1000)).changes
  const fromC = (await c.mesh.changesFor({}, 0, 1000)).changes
  // Plain creations, among them one of a document the receiver holds (in the second statement's rows),
  // one that comes twice (in the third's), and one of another collection.
  const changes = [...fromA.slice(0, 70), ...fromB, ...fromA.slice(70, 100), fromA[90]!, ...fromA.slice(100)]
  changes.splice(130, 0, fromC.find((x) => x.collection === 'other')!)
  const [together, oneByOne] = [await open('dest1'), await open('dest2')]
  const held = fromC.filter((x) => x.id === 'held')
  for (const d of [together, oneByOne]) await d.mesh.applyRemote(held)
  const sum = { applied: 0, unchanged: 0, asReceived: 0 }
  for (const x of changes) {
    const r = await oneByOne.mesh.applyRemote([x])
    sum.applied += r.applied
    sum.unchanged += r.unchanged
    sum.asReceived += r.asReceived
  }
  expect(await together.mesh.applyRemote(changes)).toMatchObject(sum)
  expect(sum).toEqual({ applied: 152, unchanged: 1, asReceived: 151 })
  expect((await together.mesh.stats()).sequence).toBe((await oneByOne.mesh.stats()).sequence)
  const rows = (dir: string) => {
    const db = new Database(join(dir, STORE_FILE), { readonly: true })
    const all = db.prepare('SELECT seq, collection, id, doc, meta FROM docs ORDER BY seq').all()
    db.close()
    return all
  }
  for (const m of [a, b, c, together, oneByOne]) await m.mesh.close()
  expect(rows(together.dir)).toEqual(rows(oneByOne.dir))
  expect(rows(together.dir)).toHaveLength(152)
})
