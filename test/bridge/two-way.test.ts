import { afterEach, describe, expect, it } from 'vitest'
import { counter } from './helpers/counter-model.js'
import { MeshLink } from './helpers/mesh-link.js'
import { openNode, rows, type TestNode } from './helpers/node.js'
import { tempDirs, waitFor } from './helpers/wait.js'

const dirs = tempDirs()
const nodes: TestNode[] = []
let link: MeshLink | undefined

afterEach(async () => {
  link?.stop()
  link = undefined
  for (const n of nodes.splice(0)) await n.close()
  dirs.cleanup()
})

function insert(node: TestNode, from: number, to: number): void {
  const stmt = node.db.prepare(
    'INSERT INTO counters (id, branch_id, business_id, receipt_type, tot_rcpt_no, cur_rcpt_no, invc_no, bhf_id, last_touched, created_at) VALUES (@id, @branch_id, @business_id, @receipt_type, @tot_rcpt_no, @cur_rcpt_no, @invc_no, @bhf_id, @last_touched, @created_at)',
  )
  node.db.transaction(() => {
    for (let i = from; i < to; i++) stmt.run(counter(i))
  })()
}

async function pair(bOptions: Parameters<typeof openNode>[1] = {}): Promise<[TestNode, TestNode]> {
  const a = await openNode(dirs.make('a'))
  const b = await openNode(dirs.make('b'), bOptions)
  nodes.push(a, b)
  link = new MeshLink([a.mesh, b.mesh])
  link.live()
  return [a, b]
}

describe('two repositories, two meshes', () => {
  it('mirrors inserts, updates and deletes both ways, and nothing echoes back', async () => {
    const [a, b] = await pair()
    insert(a, 0, 50)
    await waitFor(() => rows(b).length === 50, { message: 'A rows in B' })
    expect(rows(b)).toEqual(rows(a))
    await a.sync.flush()
    await b.sync.flush()
    await link!.settled()
    // A sent 50 documents; B applied them and sent nothing.
    expect(a.meshWrites.changed).toBe(50)
    expect(b.meshWrites.changed).toBe(0)
    expect(b.writes()).toBe(50)

    // B edits 10 rows and deletes 5.
    b.db.prepare("UPDATE counters SET cur_rcpt_no = cur_rcpt_no + 100, last_touched = 'b' WHERE id < 'c000010'").run()
    b.db.prepare("DELETE FROM counters WHERE id >= 'c000045'").run()
    await waitFor(
      () => rows(a).length === 45 && rows(a).every((r) => String(r.id) >= 'c000010' || r.last_touched === 'b'),
      {
        message: 'B changes in A',
      },
    )
    expect(rows(a)).toEqual(rows(b))
    await a.sync.flush()
    await b.sync.flush()
    await link!.settled()
    expect(b.meshWrites.changed).toBe(15)
    expect(a.meshWrites.changed).toBe(50)
    // A applied exactly B's 15 changes; B wrote only its own 15 on top of the 50 received.
    expect(a.writes()).toBe(50 + 15)
    expect(b.writes()).toBe(50 + 15)
    const ma = a.sync.metrics()
    expect(ma.applied).toBe(15)
    expect(ma.echoSuppressed).toBeGreaterThanOrEqual(50)
    expect(ma.rejected).toBe(0)
    expect(ma.errors).toBe(0)
    const mb = b.sync.metrics()
    expect(mb.applied).toBe(50)
    expect(mb.pushed).toBe(15)
  })

  it('merges concurrent edits of different fields of the same row', async () => {
    const [a, b] = await pair()
    insert(a, 0, 1)
    await waitFor(() => rows(b).length === 1)
    link!.stop()
    await a.sync.flush()
    await b.sync.flush()
    a.db.prepare('UPDATE counters SET cur_rcpt_no = 77').run()
    b.db.prepare('UPDATE counters SET invc_no = 88').run()
    await waitFor(async () => (await a.mesh.get('counters', 'c000000'))?.curRcptNo === 77)
    await waitFor(async () => (await b.mesh.get('counters', 'c000000'))?.invcNo === 88)
    await link!.sync()
    for (const n of [a, b]) {
      await waitFor(
        () => {
          const r = rows(n)[0]!
          return r.cur_rcpt_no === 77 && r.invc_no === 88
        },
        { message: `both edits in ${n === a ? 'A' : 'B'}` },
      )
    }
    expect(rows(a)).toEqual(rows(b))
  })

  it('never lets a remote change overwrite a local edit that is not sent yet', async () => {
    // B only notices its app's writes when told to (flush), so its edit stays unsent meanwhile.
    const [a, b] = await pair({ pollIntervalMs: 3_600_000, watchFile: false })
    insert(a, 0, 1)
    await waitFor(() => rows(b).length === 1)
    await b.sync.flush()
    b.db.prepare('UPDATE counters SET invc_no = 5').run()
    a.db.prepare('UPDATE counters SET cur_rcpt_no = 9').run()
    await waitFor(() => b.sync.metrics().deferred === 1, { message: 'remote change held back' })
    expect(rows(b)[0]).toMatchObject({ invc_no: 5, cur_rcpt_no: 0 })
    await b.sync.flush()
    for (const n of [a, b]) {
      await waitFor(() => rows(n)[0]?.invc_no === 5 && rows(n)[0]?.cur_rcpt_no === 9, {
        message: `merged row in ${n === a ? 'A' : 'B'}`,
      })
    }
  })

  it('applies a change that undoes ours before the observer could report either', async () => {
    const [a] = await pair()
    insert(a, 0, 2)
    // Our push and a removal from elsewhere commit back to back: one observer delivery would show no difference.
    await a.sync.flush()
    await a.mesh.remove('counters', ['c000000'])
    await waitFor(() => rows(a).length === 1, { message: 'the removal applied' })
    // The same with a value changed back.
    a.db.prepare("UPDATE counters SET cur_rcpt_no = 50 WHERE id = 'c000001'").run()
    await a.sync.flush()
    await a.mesh.upsert('counters', [{ _id: 'c000001', curRcptNo: 1 }])
    await waitFor(() => rows(a)[0]?.cur_rcpt_no === 1, { message: 'the revert applied' })
  })
})
