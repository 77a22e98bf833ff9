import { afterEach, describe, expect, it } from 'vitest'
import { Direction, type SyncAdapter } from '../../src/bridge/adapter.js'
import { counter, counterAdapter } from './helpers/counter-model.js'
import { MeshLink } from './helpers/mesh-link.js'
import { openNode, rows, type TestNode } from './helpers/node.js'
import { tempDirs, waitFor } from './helpers/wait.js'

const dirs = tempDirs()
const nodes: TestNode[] = []
const links: MeshLink[] = []

afterEach(async () => {
  for (const l of links.splice(0)) l.stop()
  for (const n of nodes.splice(0)) await n.close()
  dirs.cleanup()
})

const INSERT =
  'INSERT INTO counters (id, branch_id, business_id, receipt_type, tot_rcpt_no, cur_rcpt_no, invc_no, bhf_id, last_touched, created_at) VALUES (@id, @branch_id, @business_id, @receipt_type, @tot_rcpt_no, @cur_rcpt_no, @invc_no, @bhf_id, @last_touched, @created_at)'

function insert(node: TestNode, from: number, to: number): void {
  const stmt = node.db.prepare(INSERT)
  node.db.transaction(() => {
    for (let i = from; i < to; i++) stmt.run(counter(i))
  })()
}

async function open(dir: string, options: Parameters<typeof openNode>[1] = {}): Promise<TestNode> {
  const n = await openNode(dir, options)
  nodes.push(n)
  return n
}

/** A (bidirectional) and B (with `bAdapter`), their meshes linked live. */
async function pair(bAdapter: SyncAdapter): Promise<[TestNode, TestNode, MeshLink]> {
  const a = await open(dirs.make('a'))
  const b = await open(dirs.make('b'), { adapters: [bAdapter] })
  const link = new MeshLink([a.mesh, b.mesh])
  links.push(link)
  link.live()
  return [a, b, link]
}

async function settle(link: MeshLink, ...ns: TestNode[]): Promise<void> {
  for (let i = 0; i < 2; i++) {
    for (const n of ns) await n.sync.flush()
    await link.settled()
  }
}

describe('adapter direction', () => {
  it('sendOnly: local rows go out, remote changes are never applied', async () => {
    const [a, b, link] = await pair({ ...counterAdapter, direction: Direction.sendOnly })
    insert(b, 0, 5)
    await waitFor(() => rows(a).length === 5, { message: "B's rows in A" })
    insert(a, 10, 15)
    a.db.prepare("UPDATE counters SET invc_no = 99 WHERE id = 'c000001'").run()
    await settle(link, a, b)
    expect(await b.mesh.count({ collection: 'counters' })).toBe(10)
    expect(rows(b).map((r) => r.id)).toEqual(['c000000', 'c000001', 'c000002', 'c000003', 'c000004'])
    expect(rows(b).find((r) => r.id === 'c000001')?.invc_no).not.toBe(99)
    expect(b.sync.metrics()).toMatchObject({ received: 0, applied: 0 })
  })

  it('receiveOnly: remote changes are applied, local rows never reach the mesh', async () => {
    const [a, b, link] = await pair({ ...counterAdapter, direction: Direction.receiveOnly })
    insert(a, 0, 5)
    await waitFor(() => rows(b).length === 5, { message: "A's rows in B" })
    insert(b, 10, 15)
    b.db.prepare("UPDATE counters SET invc_no = 99 WHERE id = 'c000001'").run()
    await settle(link, a, b)
    expect(b.meshWrites.changed).toBe(0)
    expect(await a.mesh.count({ collection: 'counters' })).toBe(5)
    expect(rows(a).find((r) => r.id === 'c000001')?.invc_no).not.toBe(99)
    expect(b.sync.metrics().pushed).toBe(0)
  })
})

describe('hydrateOnStartup: false', () => {
  it('leaves what changed while away, and applies what changes from then on', async () => {
    const a = await open(dirs.make('a'))
    const bDir = dirs.make('b')
    const b1 = await openNode(bDir)
    const link1 = new MeshLink([a.mesh, b1.mesh])
    insert(a, 0, 10)
    await a.sync.flush()
    await link1.sync()
    await waitFor(() => rows(b1).length === 10, { message: 'first sync' })
    await b1.close()

    a.db.prepare("UPDATE counters SET invc_no = 500 WHERE id < 'c000005'").run()
    await a.sync.flush()
    const b = await open(bDir, { start: false, adapters: [{ ...counterAdapter, hydrateOnStartup: false }] })
    const link = new MeshLink([a.mesh, b.mesh])
    links.push(link)
    await link.sync()
    const report = await b.registry.start()
    expect(report.catchUp).toEqual({})
    await b.sync.flush()
    expect(rows(b).filter((r) => r.invc_no === 500)).toHaveLength(0)

    link.live()
    a.db.prepare("UPDATE counters SET invc_no = 600 WHERE id = 'c000007'").run()
    await waitFor(() => rows(b).find((r) => r.id === 'c000007')?.invc_no === 600, { message: 'live change' })
    expect(b.sync.metrics().applied).toBe(1)
  })
})

describe('fromDocument returning null', () => {
  it('skips the document: not applied, counted as filtered, the others land', async () => {
    const [a, b, link] = await pair({
      ...counterAdapter,
      fromDocument: (doc) => (doc.bhfId === 'skip' ? null : counterAdapter.fromDocument(doc)),
    })
    const stmt = a.db.prepare(INSERT)
    stmt.run(counter(1))
    stmt.run(counter(2, { bhf_id: 'skip' }))
    stmt.run(counter(3))
    await waitFor(() => rows(b).length === 2, { message: 'two rows in B' })
    await settle(link, a, b)
    expect(rows(b).map((r) => r.id)).toEqual(['c000001', 'c000003'])
    expect(b.sync.metrics()).toMatchObject({ applied: 2, filtered: 1, rejected: 0 })
  })
})

describe("an adapter's own repository writes", () => {
  it('deleteFromRepository receives the removed ids inside the apply transaction', async () => {
    const deleted: string[][] = []
    const [a, b] = await pair({
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
    insert(a, 0, 4)
    await waitFor(() => rows(b).length === 4, { message: 'rows in B' })
    a.db.prepare("DELETE FROM counters WHERE id IN ('c000001', 'c000002')").run()
    await waitFor(() => !rows(b).some((r) => r.id === 'c000001' || r.id === 'c000002'), { message: 'deletes in B' })
    expect(deleted.flat().sort()).toEqual(['c000001', 'c000002'])
    expect(rows(b).map((r) => r.id)).toEqual(['archived-c000001', 'archived-c000002', 'c000000', 'c000003'])
  })
})
