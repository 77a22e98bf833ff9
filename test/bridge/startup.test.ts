import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { createSyncRegistry, type MeshStore, openSqliteRepository, type SyncEvents } from '../../src/index.js'
import { counter, counterAdapter, counterModel } from './helpers/counter-model.js'
import {
  BACKENDS,
  DITTO_NOTICES_LATER,
  type NodeOptions,
  openNode,
  openTestMesh,
  rows,
  type TestNode,
  titleOn,
} from './helpers/node.js'
import { remoteSite } from './helpers/remote.js'
import { tempDirs, waitFor } from './helpers/wait.js'

const dirs = tempDirs()
const cleanup: (() => unknown)[] = []

afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
  dirs.cleanup()
})

const INSERT =
  'INSERT INTO counters (id, branch_id, business_id, receipt_type, tot_rcpt_no, cur_rcpt_no, invc_no, bhf_id, last_touched, created_at) VALUES (@id, @branch_id, @business_id, @receipt_type, @tot_rcpt_no, @cur_rcpt_no, @invc_no, @bhf_id, @last_touched, @created_at)'

function fill(node: TestNode<MeshStore>, n: number, over: Parameters<typeof counter>[1] = {}): void {
  const insert = node.db.prepare(INSERT)
  node.db.transaction(() => {
    for (let i = 0; i < n; i++) insert.run(counter(i, over))
  })()
}

describe.each(BACKENDS)('on the %s mesh', (backend) => {
  async function node(dir: string, options: NodeOptions = {}): Promise<TestNode<MeshStore>> {
    const n = await openNode(dir, { ...options, backend })
    cleanup.push(() => n.close())
    return n
  }

  describe('registry', () => {
    it('waits for the mesh and the repository to be ready, and can be started again after a failure', async () => {
      const dir = dirs.make()
      let attempts = 0
      let resolveMesh!: (m: MeshStore) => void
      const registry = createSyncRegistry({
        mesh: () => {
          attempts++
          if (attempts === 1) return Promise.reject(new Error('mesh not ready yet'))
          return new Promise<MeshStore>((r) => {
            resolveMesh = r
          })
        },
        repository: openSqliteRepository({
          file: join(dir, 'app.db'),
          models: [{ ...counterModel, columns: { id: 'text', branch_id: 'integer' } }],
        }),
        adapters: [counterAdapter],
        context: { branchId: 1 },
      })
      cleanup.push(() => registry.close())
      await expect(registry.start()).rejects.toThrow('mesh not ready yet')
      const starting = registry.start()
      expect(registry.start()).toBe(starting)
      expect(() => registry.coordinator).toThrow(/await start\(\)/)
      const mesh = await openTestMesh(backend, join(dir, 'mesh'))
      cleanup.push(() => mesh.close())
      resolveMesh(mesh)
      const report = await starting
      expect(registry.coordinator.state).toBe('live')
      expect(report.meshReplaced).toBe(false)
      expect(attempts).toBe(2)
    })

    it('registers adapters idempotently and refuses conflicting ones', async () => {
      const n = await node(dirs.make(), { start: false })
      n.registry.registerDefaults([counterAdapter])
      n.registry.registerDefaults([counterAdapter, counterAdapter])
      expect(() => n.registry.register({ ...counterAdapter })).toThrow(/already registered/)
      await n.registry.start()
      expect(n.sync.adapters()).toEqual([counterAdapter])
      expect(() => n.registry.register({ ...counterAdapter, model: 'x', collection: 'x' })).toThrow(/before start/)
    })

    it('honours a startup delay, abortably', async () => {
      const n = await node(dirs.make(), { start: false, settings: { startupDelayMs: 60_000 } })
      const controller = new AbortController()
      const started = n.registry.start({ signal: controller.signal })
      controller.abort()
      await expect(started).rejects.toMatchObject({ code: 'ABORTED' })
    })
  })

  describe('startup', () => {
    it('seeds rows never mirrored, in chunks with progress, resuming after an interruption', async () => {
      const dir = dirs.make()
      const first = await openNode(dir, { start: false, settings: { seedBatchSize: 500 }, backend })
      fill(first, 3000)
      const progress: SyncEvents['progress'][] = []
      first.registry.on('progress', (p) => {
        progress.push(p)
        if (p.phase === 'seed' && p.done >= 1000) void first.registry.close()
      })
      await expect(first.registry.start()).rejects.toMatchObject({ code: 'ABORTED' })
      await first.close()
      const seededFirst = first.meshWrites.changed
      expect(seededFirst).toBeGreaterThanOrEqual(1000)
      expect(seededFirst).toBeLessThan(3000)
      expect(progress.filter((p) => p.phase === 'seed').map((p) => [p.done, p.total])).toEqual([
        [500, 3000],
        [1000, 3000],
      ])

      const second = await node(dir)
      expect(second.startup!.seeded.counters).toMatchObject({ total: 3000 - seededFirst, sent: 3000 - seededFirst })
      expect(second.meshWrites.changed).toBe(3000 - seededFirst)
      expect(await second.mesh.count({ collection: 'counters' })).toBe(3000)
      // Once complete, later starts do not scan again.
      const writes = second.writes()
      await second.close()
      cleanup.pop()
      const third = await node(dir)
      expect(third.startup!.seeded.counters).toMatchObject({ alreadyDone: true, sent: 0 })
      expect(third.meshWrites.changed).toBe(0)
      expect(third.writes()).toBe(writes)
    })

    it('does nothing at all when nothing changed while away', async () => {
      const dir = dirs.make()
      const first = await node(dir)
      fill(first, 500)
      await first.sync.flush()
      await first.close()
      cleanup.pop()
      const again = await node(dir)
      expect(again.startup).toMatchObject({ drained: 0, meshReplaced: false, catchUp: { counters: { changed: 0 } } })
      expect(again.meshWrites.changed).toBe(0)
      expect(again.writes()).toBe(500)
      expect(again.sync.metrics().received).toBe(0)
    })

    it('lets the mesh win on first contact: an old copy of the database does not overwrite newer documents', async () => {
      const newer = (i: number) => counter(i, { cur_rcpt_no: 1000 + i })
      for (const hydrate of [true, false]) {
        // B restores an old copy of the database (same ids, older values) next to a mesh that has the new ones.
        const b = await node(dirs.make('b'), {
          start: false,
          adapters: [{ ...counterAdapter, hydrateOnStartup: hydrate }],
        })
        fill(b, 20)
        const site = await remoteSite(backend, b.mesh, dirs.make('site'))
        cleanup.push(() => site.close())
        await site.upsert(
          'counters',
          Array.from({ length: 20 }, (_, i) => counterAdapter.toDocument(newer(i))),
        )
        await b.registry.start()
        await b.sync.flush()
        expect(rows(b)).toEqual(Array.from({ length: 20 }, (_, i) => newer(i)))
        expect(b.meshWrites.changed).toBe(0)
        expect((await b.mesh.get('counters', 'c000003'))?.curRcptNo).toBe(1003)
      }
    })

    it.skipIf(backend === 'ditto')(
      titleOn(
        backend,
        'with skipInitialFetch, misses what changed while away until a normal start catches up',
        DITTO_NOTICES_LATER,
      ),
      async () => {
        const bDir = dirs.make('b')
        const b1 = await openNode(bDir, { backend })
        const first = await remoteSite(backend, b1.mesh, dirs.make('site'))
        cleanup.push(() => first.close())
        await first.upsert(
          'counters',
          Array.from({ length: 50 }, (_, i) => counterAdapter.toDocument(counter(i))),
        )
        await waitFor(() => b1.sync.metrics().applied === 50, { message: 'first sync' })
        await b1.sync.flush()
        await b1.close()

        // While B is away, another site changes 10 documents.
        const b2 = await openNode(bDir, { start: false, settings: { skipInitialFetch: true }, backend })
        const away = await remoteSite(backend, b2.mesh, dirs.make('site'))
        cleanup.push(() => away.close())
        await away.upsert(
          'counters',
          Array.from({ length: 10 }, (_, i) => counterAdapter.toDocument(counter(i, { invc_no: -1 }))),
        )
        const skipped = await b2.registry.start()
        expect(skipped.catchUp).toEqual({})
        expect(b2.db.prepare('SELECT count(*) FROM counters WHERE invc_no = -1').pluck().get()).toBe(0)
        await b2.close()

        const b3 = await node(bDir)
        expect(b3.startup!.catchUp.counters?.changed).toBe(10)
        expect(b3.db.prepare('SELECT count(*) FROM counters WHERE invc_no = -1').pluck().get()).toBe(10)
      },
    )

    it('sends everything again to a mesh that replaced the one the sync state knew', async () => {
      const dir = dirs.make()
      const first = await openNode(dir, { backend })
      fill(first, 100)
      await first.sync.flush()
      await first.close()
      // The seed's strategy: a fresh, empty mesh directory on every launch.
      const { renameSync } = await import('node:fs')
      renameSync(join(dir, 'mesh'), join(dir, 'old-mesh'))
      const again = await node(dir)
      expect(again.startup!.meshReplaced).toBe(true)
      expect(again.startup!.seeded.counters?.sent).toBe(100)
      expect(await again.mesh.count({ collection: 'counters' })).toBe(100)
      expect(again.writes()).toBe(100)
    })
  })
})
