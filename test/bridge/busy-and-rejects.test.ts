import { afterEach, describe, expect, it } from 'vitest'
import type { MeshStore, SyncEvents } from '../../src/index.js'
import { counter, counterAdapter } from './helpers/counter-model.js'
import { BACKENDS, type NodeOptions, openNode, rows, type TestNode } from './helpers/node.js'
import { type RemoteSite, remoteSite } from './helpers/remote.js'
import { runFixture, tempDirs, waitFor } from './helpers/wait.js'

const dirs = tempDirs()
const closers: (() => Promise<unknown>)[] = []

afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c()
  dirs.cleanup()
})

function record<E extends keyof SyncEvents>(n: TestNode<MeshStore>, event: E): SyncEvents[E][] {
  const seen: SyncEvents[E][] = []
  n.sync.on(event, (p) => seen.push(p))
  return seen
}

describe.each(BACKENDS)('on the %s mesh', (backend) => {
  async function node(options: NodeOptions = {}): Promise<TestNode<MeshStore>> {
    const n = await openNode(dirs.make('b'), { ...options, backend })
    closers.push(() => n.close())
    return n
  }

  /** Another site writing into `n`'s mesh. */
  async function site(n: TestNode<MeshStore>): Promise<RemoteSite> {
    const s = await remoteSite(backend, n.mesh, dirs.make('src'))
    closers.push(() => s.close())
    return s
  }

  describe('busy database', () => {
    it('lands a 10,000-row burst while another process holds the write lock, with no error', async () => {
      const docs = Array.from({ length: 10_000 }, (_, i) => counterAdapter.toDocument(counter(i)))
      const b = await node()
      const src = await site(b)
      const errors = record(b, 'error')
      const busy = record(b, 'busy')
      // The competing writer holds the lock until the bridge has had to wait for it a while.
      const holder = runFixture('hold-lock', [b.dbFile, 'stdin'])
      await holder.line((l) => l === 'locked')
      await src.upsert('counters', docs)
      await waitFor(() => busy.length >= 3, { timeout: 20_000, message: 'the apply waiting for the lock' })
      expect(b.sync.metrics().applied).toBe(0)
      holder.child.stdin!.end('release\n')
      await waitFor(() => b.sync.metrics().applied === 10_000, { timeout: 30_000, message: 'all rows applied' })
      expect(await holder.exited).toBe(0)
      expect(rows(b)).toHaveLength(10_000)
      expect(errors).toEqual([])
      const m = b.sync.metrics()
      expect(m.errors).toBe(0)
      expect(m.rejected).toBe(0)
      expect(m.busyRetries).toBeGreaterThan(0)
      expect(busy.length).toBe(m.busyRetries)
      expect(b.writes()).toBe(10_000)
    }, 40_000)
  })

  describe('malformed remote documents', () => {
    it('refuses them with their reason and lands the rest of the batch', async () => {
      const good = Array.from({ length: 20 }, (_, i) => counterAdapter.toDocument(counter(i)))
      const { curRcptNo: _drop, ...missing } = counterAdapter.toDocument(counter(100))
      const bad = [
        { ...missing, _id: 'bad-missing' },
        { ...counterAdapter.toDocument(counter(101)), _id: 'bad-type', totRcptNo: 'seven' },
        { ...counterAdapter.toDocument(counter(102)), _id: 'bad-created', createdAt: 12 },
      ]
      const b = await node()
      const src = await site(b)
      const rejected = record(b, 'rejected')
      await src.upsert('counters', [...good.slice(0, 10), ...bad, ...good.slice(10)])
      await waitFor(() => b.sync.metrics().received === 23, { message: 'all received' })
      await b.sync.flush()
      expect(rows(b).map((r) => r.id)).toEqual(good.map((d) => d._id))
      const m = b.sync.metrics()
      expect(m.applied).toBe(20)
      expect(m.rejected).toBe(3)
      expect(m.rejectedByReason).toEqual({ 'invalid-document': 3 })
      expect(rejected.map((r) => [r.id, r.message]).sort()).toEqual([
        ['bad-created', 'createdAt is not a string'],
        ['bad-missing', 'curRcptNo is missing'],
        ['bad-type', 'totRcptNo is not an integer'],
      ])
      expect(rejected.every((r) => r.direction === 'remote' && r.model === 'counters')).toBe(true)
      // A document fixed later is applied.
      await src.upsert('counters', [{ _id: 'bad-type', totRcptNo: 7 }])
      await waitFor(() => rows(b).some((r) => r.id === 'bad-type'), { message: 'fixed document applied' })
    })

    it('refuses a record the database rejects, and writes the others of its batch', async () => {
      // The adapter maps, but the table's NOT NULL constraint refuses one record.
      const loose = {
        ...counterAdapter,
        fromDocument: (doc: Parameters<typeof counterAdapter.fromDocument>[0]) =>
          doc._id === 'c000003'
            ? { ...counterAdapter.fromDocument(doc), branch_id: null }
            : counterAdapter.fromDocument(doc),
      }
      const b = await node({ adapters: [loose as typeof counterAdapter] })
      const src = await site(b)
      const rejected = record(b, 'rejected')
      await src.upsert(
        'counters',
        Array.from({ length: 8 }, (_, i) => counterAdapter.toDocument(counter(i))),
      )
      await waitFor(() => b.sync.metrics().applied === 7 && b.sync.metrics().rejected === 1, {
        message: '7 applied, 1 rejected',
      })
      expect(rows(b)).toHaveLength(7)
      expect(rejected[0]).toMatchObject({ id: 'c000003', reason: 'repository-refused' })
      expect(rejected[0]!.message).toMatch(/NOT NULL/)
    })

    it("goes through an adapter's own repository writes, refusing only the record they fail on", async () => {
      const b = await node({
        models: [{ name: 'counters' }, { name: 'audit', columns: { id: 'text', note: 'text' } }],
        adapters: [
          {
            ...counterAdapter,
            upsertToRepository: async (tx, records) => {
              if (records.some((r) => r.id === 'c000003')) throw new Error('the audit refuses c000003')
              const n = await tx.upsert('counters', records)
              await tx.upsert(
                'audit',
                records.map((r) => ({ id: String(r.id), note: 'applied' })),
              )
              return n
            },
          },
        ],
      })
      const src = await site(b)
      const rejected = record(b, 'rejected')
      await src.upsert(
        'counters',
        Array.from({ length: 8 }, (_, i) => counterAdapter.toDocument(counter(i))),
      )
      await waitFor(() => b.sync.metrics().applied === 7 && b.sync.metrics().rejected === 1)
      expect(rows(b)).toHaveLength(7)
      expect(b.db.prepare('SELECT count(*) FROM audit').pluck().get()).toBe(7)
      expect(rejected[0]).toMatchObject({
        id: 'c000003',
        reason: 'repository-refused',
        message: 'the audit refuses c000003',
      })
    })
  })
})
