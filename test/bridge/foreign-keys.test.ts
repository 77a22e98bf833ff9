import { afterEach, describe, expect, it } from 'vitest'
import type { MeshStore } from '../../src/index.js'
import { BACKENDS, openNode, type TestNode } from './helpers/node.js'
import { plainAdapter } from './helpers/plain-adapter.js'
import { type RemoteSite, remoteSite } from './helpers/remote.js'
import { tempDirs, waitFor } from './helpers/wait.js'

const dirs = tempDirs()
const closers: (() => Promise<unknown>)[] = []

afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c()
  dirs.cleanup()
})

// Foreign keys are enforced on every connection (better-sqlite3's default, said here to be plain).
const DDL = `
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS artist (id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS album (id TEXT PRIMARY KEY, title TEXT NOT NULL, artist_id TEXT NOT NULL REFERENCES artist (id));
CREATE TABLE IF NOT EXISTS track (
  id TEXT PRIMARY KEY, name TEXT NOT NULL,
  album_id TEXT REFERENCES album (id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS employee (id TEXT PRIMARY KEY, name TEXT NOT NULL, reports_to TEXT REFERENCES employee (id));
`
// Registered children first: the order must come from the schema, not from registration.
const MODELS = ['track', 'album', 'employee', 'artist']

function counts(n: TestNode<MeshStore>): Record<string, number> {
  return Object.fromEntries(MODELS.map((t) => [t, n.db.prepare(`SELECT count(*) FROM ${t}`).pluck().get() as number]))
}

describe.each(BACKENDS)('foreign keys on the %s mesh', (backend) => {
  /** Opens the same device again and again (a restart). */
  function reopenable(): () => Promise<TestNode<MeshStore>> {
    const dir = dirs.make('b')
    return () =>
      openNode(dir, {
        ddl: DDL,
        models: MODELS.map((name) => ({ name })),
        adapters: MODELS.map((m) => plainAdapter(m)),
        countWrites: false,
        backend,
      })
  }

  async function device(): Promise<{ b: TestNode<MeshStore>; site: RemoteSite }> {
    const b = await reopenable()()
    closers.push(() => b.close())
    const site = await remoteSite(backend, b.mesh, dirs.make('site'))
    closers.push(() => site.close())
    return { b, site }
  }

  it('lists models parents first', async () => {
    const { b } = await device()
    const order = b.repo.models()
    expect(order.indexOf('artist')).toBeLessThan(order.indexOf('album'))
    expect(order.indexOf('album')).toBeLessThan(order.indexOf('track'))
  })

  it('parks children that arrive before their parents and applies them when the parents land', async () => {
    const { b, site } = await device()
    const parked: string[] = []
    b.sync.on('parked', (p) => parked.push(`${p.model}/${p.id}`))
    await site.upsert('track', [
      { _id: 't1', name: 'One', album_id: 'al1' },
      { _id: 't2', name: 'Two', album_id: 'al1' },
      { _id: 't3', name: 'Loose', album_id: null },
    ])
    await waitFor(async () => (await b.repo.parkedCounts()).parked === 2, { message: 'tracks parked' })
    expect(counts(b).track).toBe(1)
    const kept = await b.repo.parked({ limit: 10 })
    expect(kept.map((k) => [k.model, k.id, k.state, k.waitsFor])).toEqual([
      ['track', 't1', 'parked', 'album(id)'],
      ['track', 't2', 'parked', 'album(id)'],
    ])
    expect(kept[0]!.reason).toMatch(/no album row with id = "al1"/)
    expect(parked.sort()).toEqual(['track/t1', 'track/t2'])
    expect(b.sync.metrics().rejected).toBe(0)

    // The album waits for its artist in turn; the artist unblocks both, in a later delivery.
    await site.upsert('album', [{ _id: 'al1', title: 'First', artist_id: 'ar1' }])
    await waitFor(async () => (await b.repo.parkedCounts()).parked === 3, { message: 'album parked' })
    await site.upsert('artist', [{ _id: 'ar1', name: 'Someone' }])
    await waitFor(() => counts(b).track === 3, { message: 'tracks applied' })
    expect(counts(b)).toMatchObject({ artist: 1, album: 1, track: 3 })
    expect(await b.repo.parkedCounts()).toEqual({ parked: 0, refused: 0 })
  })

  it('applies a batch holding parents and children in any order, self-references included', async () => {
    const { b, site } = await device()
    // One delivery, children listed first; employees reference each other in a chain.
    await site.upsert('employee', [
      { _id: 'e3', name: 'C', reports_to: 'e2' },
      { _id: 'e2', name: 'B', reports_to: 'e1' },
      { _id: 'e1', name: 'A', reports_to: null },
      { _id: 'e9', name: 'Orphan', reports_to: 'e8' },
    ])
    await waitFor(() => counts(b).employee === 3, { message: 'employees' })
    await waitFor(async () => (await b.repo.parkedCounts()).parked === 1, { message: 'orphan parked' })
    expect((await b.repo.parked({ limit: 5 }))[0]).toMatchObject({ model: 'employee', id: 'e9', state: 'parked' })
    await site.upsert('employee', [{ _id: 'e8', name: 'H', reports_to: 'e1' }])
    await waitFor(() => counts(b).employee === 5, { message: 'orphan applied' })
    expect(b.sync.metrics().rejected).toBe(0)
  })

  it('deletes a parent and its cascaded children without errors, and refused rows are kept with their reason', async () => {
    const { b, site } = await device()
    await site.upsert('artist', [{ _id: 'ar1', name: 'Someone' }])
    await site.upsert('album', [{ _id: 'al1', title: 'First', artist_id: 'ar1' }])
    await site.upsert('track', [
      { _id: 't1', name: 'One', album_id: 'al1' },
      { _id: 't2', name: 'Two', album_id: 'al1' },
    ])
    await waitFor(() => counts(b).track === 2, { message: 'tracks' })
    // The other device deleted the album; its cascade deleted the tracks there, and both travel.
    await site.remove('track', ['t1', 't2'])
    await site.remove('album', ['al1'])
    await waitFor(() => counts(b).album === 0 && counts(b).track === 0, { message: 'deleted' })
    // A document the table cannot hold (NOT NULL) is refused, kept, and listed with its reason.
    await site.upsert('artist', [{ _id: 'ar2', name: null }])
    await waitFor(async () => (await b.repo.parkedCounts()).refused === 1, { message: 'refused' })
    const [refused] = await b.repo.parked({ state: 'refused', limit: 5 })
    expect(refused).toMatchObject({ model: 'artist', id: 'ar2', state: 'refused', code: 'SQLITE_CONSTRAINT_NOTNULL' })
    expect(refused!.reason).toMatch(/NOT NULL/)
    expect(b.sync.metrics().errors).toBe(0)
    // Fixed at the source: applied, and no longer listed.
    await site.upsert('artist', [{ _id: 'ar2', name: 'Named' }])
    await waitFor(async () => (await b.repo.parkedCounts()).refused === 0, { message: 'refusal cleared' })
    expect(counts(b).artist).toBe(2)
  })

  it('parks the removal of a parent still referenced, and applies it once its children are gone', async () => {
    const { b, site } = await device()
    await site.upsert('artist', [{ _id: 'ar1', name: 'Someone' }])
    await site.upsert('album', [{ _id: 'al1', title: 'First', artist_id: 'ar1' }])
    await waitFor(() => counts(b).album === 1, { message: 'album' })
    // The removals arrive parent first (album.artist_id has no ON DELETE action).
    await site.remove('artist', ['ar1'])
    await waitFor(async () => (await b.repo.parkedCounts()).parked === 1, { message: 'removal parked' })
    expect((await b.repo.parked({ limit: 5 }))[0]).toMatchObject({ model: 'artist', id: 'ar1', op: 'delete' })
    expect(counts(b).artist).toBe(1)
    await site.remove('album', ['al1'])
    await waitFor(() => counts(b).artist === 0 && counts(b).album === 0, { message: 'both removed' })
    expect(await b.repo.parkedCounts()).toEqual({ parked: 0, refused: 0 })
    expect(b.sync.metrics().errors).toBe(0)
  })

  it('applies a parked removal once the app itself deletes the rows referencing it', async () => {
    const { b, site } = await device()
    await site.upsert('artist', [{ _id: 'ar1', name: 'Someone' }])
    await site.upsert('album', [{ _id: 'al1', title: 'First', artist_id: 'ar1' }])
    await waitFor(() => counts(b).album === 1, { message: 'album' })
    await site.remove('artist', ['ar1'])
    await waitFor(async () => (await b.repo.parkedCounts()).parked === 1, { message: 'removal parked' })
    expect((await b.repo.parked({ limit: 5 }))[0]).toMatchObject({ waitsFor: 'rows referencing artist(id)' })
    // The till's app deletes the album: its going, seen in the outbox, applies the removal.
    b.db.prepare("DELETE FROM album WHERE id = 'al1'").run()
    await waitFor(() => counts(b).artist === 0, { message: 'artist removed' })
    expect(await b.repo.parkedCounts()).toEqual({ parked: 0, refused: 0 })
    await waitFor(async () => (await b.mesh.find({ collection: 'album' })).length === 0, {
      message: 'album left the mesh',
    })
  })

  it('keeps parked rows across a restart and applies them when the parent comes', async () => {
    const open = reopenable()
    let b = await open()
    const site = await remoteSite(backend, b.mesh, dirs.make('site'))
    await site.upsert('album', [{ _id: 'al1', title: 'First', artist_id: 'ar1' }])
    await waitFor(async () => (await b.repo.parkedCounts()).parked === 1, { message: 'parked' })
    await site.close()
    await b.close()
    b = await open()
    closers.push(() => b.close())
    expect(await b.repo.parkedCounts()).toEqual({ parked: 1, refused: 0 })
    expect(b.startup?.retried).toBe(1)
    // The app writes the parent on this device: the parked row follows at once.
    b.db.prepare("INSERT INTO artist (id, name) VALUES ('ar1', 'Local')").run()
    await waitFor(() => counts(b).album === 1, { message: 'album applied after the local parent' })
    expect(await b.repo.parkedCounts()).toEqual({ parked: 0, refused: 0 })
  })

  it('forgets a parked row as soon as its document leaves the mesh (an order voided before it arrived)', async () => {
    const { b, site } = await device()
    await site.upsert('track', [
      { _id: 't1', name: 'One', album_id: 'voided' },
      { _id: 't2', name: 'Two', album_id: 'voided' },
    ])
    await waitFor(async () => (await b.repo.parkedCounts()).parked === 2, { message: 'parked' })
    await site.remove('track', ['t1', 't2'])
    await waitFor(async () => (await b.repo.parkedCounts()).parked === 0, { message: 'parked rows forgotten' })
    expect(counts(b).track).toBe(0)
    expect(await b.repo.parked({ limit: 10 })).toEqual([])
  })

  it('forgets a parked row whose document left the mesh, at the next start', async () => {
    const open = reopenable()
    let b = await open()
    const site = await remoteSite(backend, b.mesh, dirs.make('site'))
    await site.upsert('track', [{ _id: 't1', name: 'One', album_id: 'gone' }])
    await waitFor(async () => (await b.repo.parkedCounts()).parked === 1, { message: 'parked' })
    await site.remove('track', ['t1'])
    await site.close()
    await b.close()
    b = await open()
    closers.push(() => b.close())
    expect(await b.repo.parkedCounts()).toEqual({ parked: 0, refused: 0 })
    expect(counts(b).track).toBe(0)
  })
})
