import { afterEach, describe, expect, it } from 'vitest'
import type { DriftedDocument, MeshStore } from '../../src/index.js'
import { BACKENDS, DITTO_NOTICES_LATER, openNode, type TestNode, titleOn } from './helpers/node.js'
import { plainAdapter } from './helpers/plain-adapter.js'
import { remoteSite } from './helpers/remote.js'
import { tempDirs, waitFor } from './helpers/wait.js'

const dirs = tempDirs()
const cleanup: (() => Promise<unknown>)[] = []

afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
  dirs.cleanup()
})

const DDL = `
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS shelf (id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS item (id TEXT PRIMARY KEY, name TEXT NOT NULL, shelf_id TEXT REFERENCES shelf (id));
`
const MODELS = ['shelf', 'item']

function items(n: TestNode<MeshStore>): Record<string, unknown>[] {
  return n.db.prepare('SELECT id, name FROM item ORDER BY id').all() as Record<string, unknown>[]
}

function kinds(drifted: readonly DriftedDocument[]): Record<string, string> {
  return Object.fromEntries(drifted.map((d) => [`${d.model}/${d.id}`, d.kind]))
}

describe.each(BACKENDS)('verifying against the %s mesh', (backend) => {
  function open(dir: string, settings: Record<string, unknown> = {}, start = true) {
    return openNode(dir, {
      ddl: DDL,
      models: MODELS.map((name) => ({ name })),
      adapters: [
        plainAdapter('shelf'),
        // Items named "hidden" are not for this device: the adapter skips them.
        plainAdapter('item', {
          fromDocument: (doc) => {
            const { _id, ...fields } = doc
            return fields.name === 'hidden' ? null : { id: _id, ...fields }
          },
        }),
      ],
      countWrites: false,
      backend,
      start,
      settings: { verifyIntervalMs: 0, ...settings },
    })
  }

  /**
   * A device that received `docs`, then reopened, not started, with its
   * cursor set to skip what a second site (`away`) changes before the start.
   */
  async function inStepThenAway(docs: { _id: string; name: string }[]) {
    const dir = dirs.make('b')
    const b1 = await open(dir)
    const first = await remoteSite(backend, b1.mesh, dirs.make('site'))
    await first.upsert('item', docs)
    await waitFor(() => items(b1).length === docs.length, { message: 'first sync', timeout: 30_000 })
    await b1.sync.flush()
    await first.close()
    await b1.close()
    // Changes the device's cursor moves past without writing them: the start skips them.
    const b = await open(dir, { skipInitialFetch: true }, false)
    cleanup.push(() => b.close())
    const away = await remoteSite(backend, b.mesh, dirs.make('site'))
    cleanup.push(() => away.close())
    return { b, away }
  }

  it('finds nothing out of step on a device in step, parked and skipped documents included', async () => {
    const b = await open(dirs.make('b'))
    cleanup.push(() => b.close())
    const site = await remoteSite(backend, b.mesh, dirs.make('site'))
    cleanup.push(() => site.close())
    await site.upsert('shelf', [{ _id: 's1', name: 'Top' }])
    await site.upsert('item', [
      { _id: 'i1', name: 'Cup', shelf_id: 's1' },
      { _id: 'i2', name: 'hidden', shelf_id: 's1' },
      // Its shelf never came: parked.
      { _id: 'i3', name: 'Plate', shelf_id: 's9' },
    ])
    await waitFor(async () => items(b).length === 1 && (await b.repo.parkedCounts()).parked === 1, {
      message: 'applied and parked',
    })
    const report = await b.sync.verify()
    expect(report.checked).toBe(4)
    expect(report.drifted).toEqual([])
    expect(b.sync.metrics().verify).toMatchObject({ runs: 1, drifted: 0 })
  })

  it.skipIf(backend === 'ditto')(
    titleOn(
      backend,
      'finds changes that were read and not written, and applies them from the mesh',
      DITTO_NOTICES_LATER,
    ),
    async () => {
      const { b, away } = await inStepThenAway([
        { _id: 'a', name: 'Cup' },
        { _id: 'b', name: 'Bowl' },
      ])
      await away.upsert('item', [
        { _id: 'a', name: 'Mug' },
        { _id: 'c', name: 'Jug' },
      ])
      await away.remove('item', ['b'])
      await b.registry.start()
      const before = items(b)
      expect(before).toEqual([
        { id: 'a', name: 'Cup' },
        { id: 'b', name: 'Bowl' },
      ])

      const looked = await b.sync.verify({ repair: false })
      expect(kinds(looked.drifted)).toEqual({ 'item/a': 'stale', 'item/b': 'removed', 'item/c': 'missing' })
      expect(looked.drifted.find((d) => d.id === 'a')).toMatchObject({ cacheDisagreed: false })
      expect(items(b)).toEqual(before)

      const events: number[] = []
      b.sync.on('drift', (e) => events.push(e.documents.length))
      const repaired = await b.sync.verify()
      expect(repaired.repaired).toBe(true)
      expect(events).toEqual([3])
      await waitFor(() => items(b).length === 2 && items(b)[0]!.name === 'Mug', { message: 'repaired' })
      expect(items(b)).toEqual([
        { id: 'a', name: 'Mug' },
        { id: 'c', name: 'Jug' },
      ])
      expect((await b.sync.verify()).drifted).toEqual([])
      expect(b.sync.metrics().verify).toMatchObject({ runs: 3, drifted: 6 })
    },
  )

  it.skipIf(backend === 'ditto')(
    titleOn(backend, 'finds removals in every page of a model larger than one page', DITTO_NOTICES_LATER),
    async () => {
      const ids = Array.from({ length: 4_500 }, (_, i) => `i${String(i).padStart(4, '0')}`)
      const { b, away } = await inStepThenAway(ids.map((_id) => ({ _id, name: 'Cup' })))
      // The first, one in the middle of the second page of states, and the last.
      const gone = [ids[0]!, ids[2_500]!, ids.at(-1)!]
      await away.remove('item', gone)
      await b.registry.start()
      const looked = await b.sync.verify({ repair: false })
      expect(looked.checked).toBe(ids.length - gone.length)
      expect(kinds(looked.drifted)).toEqual(Object.fromEntries(gone.map((id) => [`item/${id}`, 'removed'])))
    },
    60_000,
  )

  it.skipIf(backend === 'ditto')(
    titleOn(backend, 'runs on its own while live, every verifyIntervalMs', DITTO_NOTICES_LATER),
    async () => {
      const dir = dirs.make('b')
      const b1 = await open(dir)
      await b1.close()
      const b = await open(dir, { skipInitialFetch: true, verifyIntervalMs: 100 }, false)
      cleanup.push(() => b.close())
      const away = await remoteSite(backend, b.mesh, dirs.make('site'))
      cleanup.push(() => away.close())
      await away.upsert('item', [{ _id: 'x', name: 'Tray' }])
      await b.registry.start()
      await waitFor(() => items(b).length === 1, { message: 'applied by a verification' })
      expect(b.sync.metrics().verify.drifted).toBe(1)
    },
  )
})
