import { afterEach, describe, expect, it } from 'vitest'
import { Direction, type MeshStore, type SyncAdapter } from '../../src/index.js'
import { counter, counterAdapter } from './helpers/counter-model.js'
import {
  BACKENDS,
  DITTO_NOTICES_LATER,
  type NodeOptions,
  openNode,
  rows,
  type TestNode,
  titleOn,
} from './helpers/node.js'
import { type RemoteSite, remoteSite } from './helpers/remote.js'
import { tempDirs, waitFor } from './helpers/wait.js'

const dirs = tempDirs()
const closers: (() => Promise<unknown>)[] = []

afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c()
  dirs.cleanup()
})

const INSERT =
  'INSERT INTO counters (id, branch_id, business_id, receipt_type, tot_rcpt_no, cur_rcpt_no, invc_no, bhf_id, last_touched, created_at) VALUES (@id, @branch_id, @business_id, @receipt_type, @tot_rcpt_no, @cur_rcpt_no, @invc_no, @bhf_id, @last_touched, @created_at)'

function insert(node: TestNode<MeshStore>, from: number, to: number): void {
  const stmt = node.db.prepare(INSERT)
  node.db.transaction(() => {
    for (let i = from; i < to; i++) stmt.run(counter(i))
  })()
}

const docs = (from: number, to: number, over: Parameters<typeof counter>[1] = {}) =>
  Array.from({ length: to - from }, (_, i) => counterAdapter.toDocument(counter(from + i, over)))

describe.each(BACKENDS)('on the %s mesh', (backend) => {
  async function open(options: NodeOptions = {}, dir = dirs.make('b')): Promise<TestNode<MeshStore>> {
    const n = await openNode(dir, { ...options, backend })
    closers.push(() => n.close())
    return n
  }

  /** Another site writing into `n`'s mesh. */
  async function site(n: TestNode<MeshStore>): Promise<RemoteSite> {
    const s = await remoteSite(backend, n.mesh, dirs.make('site'))
    closers.push(() => s.close())
    return s
  }

  /** A device with `adapter`, and another site writing into its mesh. */
  async function device(adapter: SyncAdapter): Promise<[TestNode<MeshStore>, RemoteSite]> {
    const b = await open({ adapters: [adapter] })
    return [b, await site(b)]
  }

  describe('adapter direction', () => {
    it('sendOnly: local rows go out, remote changes are never applied', async () => {
      const [b, other] = await device({ ...counterAdapter, direction: Direction.sendOnly })
      insert(b, 0, 5)
      await waitFor(async () => (await b.mesh.count({ collection: 'counters' })) === 5, { message: "B's documents" })
      await other.upsert('counters', [...docs(10, 15), ...docs(1, 2, { invc_no: 99 })])
      await waitFor(async () => (await b.mesh.get('counters', 'c000001'))?.invcNo === 99, { message: 'remote edit' })
      await b.sync.flush()
      expect(await b.mesh.count({ collection: 'counters' })).toBe(10)
      expect(rows(b).map((r) => r.id)).toEqual(['c000000', 'c000001', 'c000002', 'c000003', 'c000004'])
      expect(rows(b).find((r) => r.id === 'c000001')?.invc_no).not.toBe(99)
      expect(b.sync.metrics()).toMatchObject({ received: 0, applied: 0 })
    })

    it('receiveOnly: remote changes are applied, local rows never reach the mesh', async () => {
      const [b, other] = await device({ ...counterAdapter, direction: Direction.receiveOnly })
      await other.upsert('counters', docs(0, 5))
      await waitFor(() => rows(b).length === 5, { message: 'remote rows in B' })
      insert(b, 10, 15)
      b.db.prepare("UPDATE counters SET invc_no = 99 WHERE id = 'c000001'").run()
      await b.sync.flush()
      expect(b.meshWrites.changed).toBe(0)
      expect(await b.mesh.count({ collection: 'counters' })).toBe(5)
      expect((await b.mesh.get('counters', 'c000001'))?.invcNo).not.toBe(99)
      expect(b.sync.metrics().pushed).toBe(0)
    })
  })

  describe('hydrateOnStartup: false', () => {
    it.skipIf(backend === 'ditto')(
      titleOn(backend, 'leaves what changed while away, and applies what changes from then on', DITTO_NOTICES_LATER),
      async () => {
        const bDir = dirs.make('b')
        const b1 = await openNode(bDir, { backend })
        const first = await site(b1)
        await first.upsert('counters', docs(0, 10))
        await waitFor(() => rows(b1).length === 10, { message: 'first sync' })
        await b1.sync.flush()
        await b1.close()

        const b = await open({ start: false, adapters: [{ ...counterAdapter, hydrateOnStartup: false }] }, bDir)
        const other = await site(b)
        await other.upsert('counters', docs(0, 5, { invc_no: 500 }))
        const report = await b.registry.start()
        expect(report.catchUp).toEqual({})
        await b.sync.flush()
        expect(rows(b).filter((r) => r.invc_no === 500)).toHaveLength(0)

        await other.upsert('counters', docs(7, 8, { invc_no: 600 }))
        await waitFor(() => rows(b).find((r) => r.id === 'c000007')?.invc_no === 600, { message: 'live change' })
        expect(b.sync.metrics().applied).toBe(1)
      },
    )
  })

  describe('fromDocument returning null', () => {
    it('skips the document: not applied, counted as filtered, the others land', async () => {
      const [b, other] = await device({
        ...counterAdapter,
        fromDocument: (doc) => (doc.bhfId === 'skip' ? null : counterAdapter.fromDocument(doc)),
      })
      await other.upsert('counters', [...docs(1, 2), ...docs(2, 3, { bhf_id: 'skip' }), ...docs(3, 4)])
      await waitFor(() => b.sync.metrics().applied === 2 && b.sync.metrics().filtered === 1, {
        message: 'two applied, one filtered',
      })
      await b.sync.flush()
      expect(rows(b).map((r) => r.id)).toEqual(['c000001', 'c000003'])
      expect(b.sync.metrics()).toMatchObject({ applied: 2, filtered: 1, rejected: 0 })
    })
  })

  describe("an adapter's own repository writes", () => {
    it('deleteFromRepository receives the removed ids inside the apply transaction', async () => {
      const deleted: string[][] = []
      const [b, other] = await device({
        ...counterAdapter,
        async deleteFromRepository(tx, ids) {
          deleted.push([...ids])
          // Keep an archive row instead of losing the record: write it, then delete.
          for (const id of ids) {
            const row = await tx.get('counters', id)
            if (row) await tx.upsert('counters', [{ ...row, id: `archived-${id}` }])
          }
          return tx.delete('counters', ids)
        },
      })
      await other.upsert('counters', docs(0, 4))
      await waitFor(() => rows(b).length === 4, { message: 'rows in B' })
      await other.remove('counters', ['c000001', 'c000002'])
      await waitFor(() => !rows(b).some((r) => r.id === 'c000001' || r.id === 'c000002'), {
        message: 'deletes in B',
      })
      expect(deleted.flat().sort()).toEqual(['c000001', 'c000002'])
      expect(rows(b).map((r) => r.id)).toEqual(['archived-c000001', 'archived-c000002', 'c000000', 'c000003'])
    })
  })
})
