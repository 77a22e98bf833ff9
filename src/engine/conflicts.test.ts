import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import type { ConflictRecord } from '../mesh/conflict.js'
import { STORE_FILE } from './database.js'
import { openBuiltinStore } from './open-builtin-store.js'
import type { BuiltinMesh, ChangeChunk, OpenMeshOptions, RemoteChange } from './types.js'

const dirs: string[] = []
const open: BuiltinMesh[] = []
afterEach(async () => {
  for (const m of open.splice(0)) await m.close()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

/** A store whose wall clock is a number the test moves. */
async function replica(siteId: string, options: Partial<OpenMeshOptions> & { dir?: string } = {}) {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'mm-conflicts-'))
  if (!options.dir) dirs.push(dir)
  const clock = { now: 1_700_000_000_000 }
  const mesh = await openBuiltinStore({ siteId, now: () => clock.now, ...options, dir })
  open.push(mesh)
  return { mesh, clock, dir }
}

async function chunkFor(from: BuiltinMesh, to: BuiltinMesh): Promise<ChangeChunk> {
  return from.changesFor(await to.versionVector(), 0, 1000)
}

async function deliver(from: BuiltinMesh, to: BuiltinMesh, chunk: ChangeChunk): Promise<void> {
  await to.applyRemote(chunk.changes, { from: from.siteId, cursor: chunk.cursor, versionVector: chunk.versionVector })
}

/** `to` pulls what it lacks from `from`. */
async function pull(from: BuiltinMesh, to: BuiltinMesh): Promise<void> {
  await deliver(from, to, await chunkFor(from, to))
}

/** Both send what the other lacks at the same moment, as two connected peers do. */
async function exchange(a: BuiltinMesh, b: BuiltinMesh): Promise<void> {
  const toB = await chunkFor(a, b)
  const toA = await chunkFor(b, a)
  await deliver(a, b, toB)
  await deliver(b, a, toA)
}

/** Everything `from` holds, whoever wrote it: what a catch-up from scratch sends. */
async function everything(from: BuiltinMesh): Promise<RemoteChange[]> {
  return (await from.changesFor({}, 0, 1000)).changes
}

const key = (c: ConflictRecord) => [c.collection, c.id, c.kind, c.field ?? '', c.winner.clock, c.loser.clock].join('|')

describe('create/create collisions', () => {
  it('a document created on two devices that never saw each other is recorded once on each, with both contents', async () => {
    const a = await replica('till-a')
    const b = await replica('till-b')
    b.clock.now += 5000
    await a.mesh.upsert('items', [{ _id: 'tea', name: 'Green tea', price: 3 }])
    await b.mesh.upsert('items', [{ _id: 'tea', name: 'Tea', price: 2.5, shelf: 'B2' }])
    const events: ConflictRecord[] = []
    a.mesh.on('conflict', (c) => events.push(c))
    await exchange(a.mesh, b.mesh)

    // The merge is as before: field by field, the later creation winning where both wrote.
    const merged = { _id: 'tea', name: 'Tea', price: 2.5, shelf: 'B2' }
    expect(await a.mesh.get('items', 'tea')).toEqual(merged)
    expect(await b.mesh.get('items', 'tea')).toEqual(merged)

    for (const m of [a.mesh, b.mesh]) {
      const list = await m.conflicts()
      expect(list).toHaveLength(1)
      expect(list[0]).toMatchObject({
        collection: 'items',
        id: 'tea',
        kind: 'create',
        winner: { site: 'till-b', content: { name: 'Tea', price: 2.5, shelf: 'B2' } },
        loser: { site: 'till-a', content: { name: 'Green tea', price: 3 } },
      })
      expect(list[0]!.field).toBeUndefined()
      expect(Date.parse(list[0]!.loser.writtenAt)).toBe(1_700_000_000_000)
      expect(await m.conflictCount()).toBe(1)
      expect(await m.conflictCount({ collection: 'items' })).toBe(1)
      expect(await m.conflictCount({ collection: 'orders' })).toBe(0)
    }
    expect(key((await a.mesh.conflicts())[0]!)).toBe(key((await b.mesh.conflicts())[0]!))
    expect(events.map(key)).toEqual([key((await a.mesh.conflicts())[0]!)])

    // Again: a re-sync, a catch-up from scratch, a restart.
    await exchange(a.mesh, b.mesh)
    await a.mesh.applyRemote(await everything(b.mesh))
    await b.mesh.applyRemote(await everything(a.mesh))
    await b.mesh.close()
    const again = await replica('till-b', { dir: b.dir })
    await again.mesh.applyRemote(await everything(a.mesh))
    await a.mesh.applyRemote(await everything(again.mesh))
    expect(await a.mesh.conflictCount()).toBe(1)
    expect(await again.mesh.conflictCount()).toBe(1)
    expect(events).toHaveLength(1)
  })

  it('the device that won learns of it too when it receives the already merged document', async () => {
    const a = await replica('till-a')
    const b = await replica('till-b')
    b.clock.now += 5000
    await a.mesh.upsert('items', [{ _id: 'tea', name: 'Green tea' }])
    await b.mesh.upsert('items', [{ _id: 'tea', name: 'Tea' }])
    // A merges first; B only ever sees A's merged document, whose creation is B's own.
    await pull(b.mesh, a.mesh)
    await pull(a.mesh, b.mesh)
    const [onA] = await a.mesh.conflicts()
    const [onB] = await b.mesh.conflicts()
    expect(onB).toMatchObject({ winner: { content: { name: 'Tea' } }, loser: { content: { name: 'Green tea' } } })
    expect(key(onB!)).toBe(key(onA!))
  })

  it('every device agrees, whichever device merged the two versions first', async () => {
    const [a, b, c, d] = await Promise.all(['a', 'b', 'c', 'd'].map((s) => replica(`site-${s}`)))
    a!.clock.now += 10
    await a!.mesh.upsert('orders', [{ _id: 'o1', total: 5 }])
    await b!.mesh.upsert('orders', [{ _id: 'o1', total: 7 }])
    // C meets both; A and B hear of each other only through C; D only ever gets C's merged document.
    await pull(a!.mesh, c!.mesh)
    await pull(b!.mesh, c!.mesh)
    await pull(c!.mesh, a!.mesh)
    await pull(c!.mesh, b!.mesh)
    await pull(c!.mesh, d!.mesh)
    const keys = await Promise.all([a, b, c, d].map(async (r) => (await r!.mesh.conflicts()).map(key)))
    expect(keys[0]).toHaveLength(1)
    for (const k of keys) expect(k).toEqual(keys[0])
    expect((await d!.mesh.conflicts())[0]).toMatchObject({
      winner: { site: 'site-a', content: { total: 5 } },
      loser: { site: 'site-b', content: { total: 7 } },
    })
  })

  it('is not recorded for an update of a seen document, nor for the same content created twice', async () => {
    const a = await replica('till-a')
    const b = await replica('till-b')
    await a.mesh.upsert('items', [{ _id: 'tea', name: 'Tea' }])
    await pull(a.mesh, b.mesh)
    b.clock.now += 1000
    await b.mesh.upsert('items', [{ _id: 'tea', name: 'Black tea' }])
    await a.mesh.upsert('items', [{ _id: 'tea', price: 2 }])
    await b.mesh.upsert('items', [{ _id: 'milk', name: 'Milk' }])
    await a.mesh.upsert('items', [{ _id: 'milk', name: 'Milk' }])
    await exchange(a.mesh, b.mesh)
    expect(await a.mesh.get('items', 'tea')).toEqual({ _id: 'tea', name: 'Black tea', price: 2 })
    expect(await a.mesh.conflicts()).toEqual([])
    expect(await b.mesh.conflicts()).toEqual([])
  })

  it('is not recorded for a re-creation after a seen removal, even with an update concurrent with it', async () => {
    const a = await replica('till-a')
    const b = await replica('till-b')
    await a.mesh.upsert('items', [{ _id: 'tea', name: 'Tea', price: 2 }])
    await pull(a.mesh, b.mesh)
    await b.mesh.remove('items', ['tea'])
    b.clock.now += 1000
    await b.mesh.upsert('items', [{ _id: 'tea', name: 'Rooibos' }])
    // A, not having seen the removal, updates the document it knows.
    a.clock.now += 2000
    await a.mesh.upsert('items', [{ _id: 'tea', price: 3 }])
    await exchange(a.mesh, b.mesh)
    expect(await a.mesh.get('items', 'tea')).toEqual(await b.mesh.get('items', 'tea'))
    expect(await a.mesh.conflicts()).toEqual([])
    expect(await b.mesh.conflicts()).toEqual([])

    // A removal seen by both, then a re-creation on A: still none.
    await a.mesh.remove('items', ['tea'])
    await exchange(a.mesh, b.mesh)
    await a.mesh.upsert('items', [{ _id: 'tea', name: 'Sencha' }])
    await exchange(a.mesh, b.mesh)
    expect(await b.mesh.get('items', 'tea')).toEqual({ _id: 'tea', name: 'Sencha' })
    expect(await a.mesh.conflictCount()).toBe(0)
    expect(await b.mesh.conflictCount()).toBe(0)
  })

  it('is recorded for a re-creation concurrent with a first creation elsewhere', async () => {
    const a = await replica('till-a')
    const b = await replica('till-b')
    const c = await replica('till-c')
    await a.mesh.upsert('items', [{ _id: 'tea', name: 'Tea' }])
    await pull(a.mesh, b.mesh)
    await b.mesh.remove('items', ['tea'])
    b.clock.now += 1000
    await b.mesh.upsert('items', [{ _id: 'tea', name: 'Rooibos' }])
    // C never saw A's document, its removal or B's: its creation is concurrent with B's.
    await c.mesh.upsert('items', [{ _id: 'tea', name: 'Chai' }])
    await exchange(b.mesh, c.mesh)
    for (const m of [b.mesh, c.mesh]) {
      expect(await m.conflicts()).toMatchObject([
        { kind: 'create', winner: { site: 'till-b', content: { name: 'Rooibos' } }, loser: { site: 'till-c' } },
      ])
    }
  })

  it('keeps working on a store made before the conflicts table existed', async () => {
    const a = await replica('till-a')
    await a.mesh.upsert('items', [{ _id: 'tea', name: 'Tea' }])
    await a.mesh.close()
    const db = new Database(join(a.dir, STORE_FILE))
    db.exec('DROP TABLE conflicts')
    db.close()
    const reopened = await replica('till-a', { dir: a.dir })
    expect(await reopened.mesh.conflicts()).toEqual([])
    const b = await replica('till-b')
    b.clock.now += 1000
    await b.mesh.upsert('items', [{ _id: 'tea', name: 'Chai' }])
    await pull(b.mesh, reopened.mesh)
    expect(await reopened.mesh.conflictCount()).toBe(1)
  })
})

describe('concurrent updates, with recordConflicts', () => {
  const record = { recordConflicts: ['prices'] }

  it('records the value that lost, on both devices, and not a sequential update', async () => {
    const a = await replica('till-a', record)
    const b = await replica('till-b', record)
    await a.mesh.upsert('prices', [{ _id: 'tea', price: 2, label: 'Tea' }])
    await pull(a.mesh, b.mesh)

    // Sequential: B changes the price after having seen A's, A sees B's change.
    b.clock.now += 1000
    await b.mesh.upsert('prices', [{ _id: 'tea', price: 3 }])
    await exchange(a.mesh, b.mesh)
    a.clock.now += 2000
    await a.mesh.upsert('prices', [{ _id: 'tea', price: 4 }])
    await exchange(a.mesh, b.mesh)
    expect(await a.mesh.conflicts()).toEqual([])
    expect(await b.mesh.conflicts()).toEqual([])

    // Concurrent: both change the price while apart; B's is later.
    a.clock.now += 1000
    await a.mesh.upsert('prices', [{ _id: 'tea', price: 5 }])
    b.clock.now += 5000
    await b.mesh.upsert('prices', [{ _id: 'tea', price: 6, label: 'Black tea' }])
    await exchange(a.mesh, b.mesh)
    expect(await a.mesh.get('prices', 'tea')).toEqual({ _id: 'tea', price: 6, label: 'Black tea' })
    for (const m of [a.mesh, b.mesh]) {
      expect(await m.conflicts()).toMatchObject([
        {
          collection: 'prices',
          id: 'tea',
          kind: 'update',
          field: 'price',
          winner: { site: 'till-b', content: { price: 6 } },
          loser: { site: 'till-a', content: { price: 5 } },
        },
      ])
    }
    // Recorded once, whatever is delivered again.
    await exchange(a.mesh, b.mesh)
    await a.mesh.applyRemote(await everything(b.mesh))
    await b.mesh.applyRemote(await everything(a.mesh))
    expect(await a.mesh.conflictCount()).toBe(1)
    expect(await b.mesh.conflictCount()).toBe(1)
  })

  it('records a field removed concurrently with a change, and nothing for collections not listed', async () => {
    const a = await replica('till-a', record)
    const b = await replica('till-b', record)
    await a.mesh.upsert('prices', [{ _id: 'tea', price: 2, note: 'x' }])
    await a.mesh.upsert('stock', [{ _id: 'tea', shelf: 'A1' }])
    await pull(a.mesh, b.mesh)
    await a.mesh.upsert('prices', [{ _id: 'tea', note: 'y' }])
    await a.mesh.upsert('stock', [{ _id: 'tea', shelf: 'A2' }])
    b.clock.now += 1000
    await b.mesh.upsert('prices', [{ _id: 'tea', price: 2 }], { mode: 'replace' })
    await b.mesh.upsert('stock', [{ _id: 'tea', shelf: 'B7' }])
    await exchange(a.mesh, b.mesh)
    expect(await a.mesh.conflicts()).toMatchObject([
      { kind: 'update', field: 'note', winner: { site: 'till-b', content: {} }, loser: { content: { note: 'y' } } },
    ])
    expect(await b.mesh.conflictCount({ collection: 'stock' })).toBe(0)
  })

  it('records nothing when the option is off', async () => {
    const a = await replica('till-a')
    const b = await replica('till-b')
    await a.mesh.upsert('prices', [{ _id: 'tea', price: 2 }])
    await pull(a.mesh, b.mesh)
    await a.mesh.upsert('prices', [{ _id: 'tea', price: 5 }])
    b.clock.now += 1000
    await b.mesh.upsert('prices', [{ _id: 'tea', price: 6 }])
    await exchange(a.mesh, b.mesh)
    expect(await a.mesh.conflictCount()).toBe(0)
    expect(await b.mesh.conflictCount()).toBe(0)
  })
})

describe('the conflict list', () => {
  it('refuses a bad query or option with a stable code', async () => {
    const a = await replica('till-a')
    await expect(a.mesh.conflicts({ limit: 0 })).rejects.toMatchObject({ code: 'INVALID_OPTIONS' })
    await expect(a.mesh.conflicts({ collection: 'no such!' })).rejects.toMatchObject({ code: 'INVALID_COLLECTION' })
    const dir = mkdtempSync(join(tmpdir(), 'mm-conflicts-'))
    dirs.push(dir)
    await expect(openBuiltinStore({ dir, recordConflicts: ['bad name!'] })).rejects.toMatchObject({
      code: 'INVALID_OPTIONS',
    })
  })

  it('lists the latest first, up to the limit, by collection', async () => {
    const a = await replica('till-a')
    const b = await replica('till-b')
    b.clock.now += 1000
    for (const [c, id] of [
      ['items', 'x'],
      ['items', 'y'],
      ['orders', 'z'],
    ] as const) {
      await a.mesh.upsert(c, [{ _id: id, v: 'a' }])
      await b.mesh.upsert(c, [{ _id: id, v: 'b' }])
      await exchange(a.mesh, b.mesh)
    }
    expect((await a.mesh.conflicts()).map((c) => c.id)).toEqual(['z', 'y', 'x'])
    expect((await a.mesh.conflicts({ limit: 2 })).map((c) => c.id)).toEqual(['z', 'y'])
    expect((await a.mesh.conflicts({ collection: 'items' })).map((c) => c.id)).toEqual(['y', 'x'])
  })
})
