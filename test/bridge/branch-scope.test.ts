import { afterEach, describe, expect, it } from 'vitest'
import { type MeshStore, withContext } from '../../src/index.js'
import { counter, counterAdapter } from './helpers/counter-model.js'
import { BACKENDS, openNode, rows, type TestNode } from './helpers/node.js'
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

const branches = (n: TestNode<MeshStore>) => [...new Set(rows(n).map((r) => r.branch_id))].sort()

describe.each(BACKENDS)("the seed's counter model with a branch-scoped observer, on the %s mesh", (backend) => {
  /** B with `bContext`, and the back office writing every branch's counters into its mesh. */
  async function shop(
    bContext: Record<string, number>,
    bAdapter = counterAdapter,
  ): Promise<[RemoteSite, TestNode<MeshStore>]> {
    const b = await openNode(dirs.make('b'), { context: bContext, adapters: [bAdapter], backend })
    closers.push(() => b.close())
    const office = await remoteSite(backend, b.mesh, dirs.make('office'))
    closers.push(() => office.close())
    await office.upsert(
      'counters',
      Array.from({ length: 30 }, (_, i) =>
        counterAdapter.toDocument(counter(i, { branch_id: (i % 3) + 1, bhf_id: `0${(i % 3) + 1}` })),
      ),
    )
    return [office, b]
  }

  it('never applies documents of another branch', async () => {
    const [office, b] = await shop({ branchId: 2 })
    await waitFor(() => rows(b).length === 10, { message: "branch 2's counters in B" })
    await b.sync.flush()
    expect(branches(b)).toEqual([2])
    // A document moving out of the branch is not applied either; the row keeps its last in-scope content.
    await office.upsert('counters', [{ _id: 'c000001', branchId: 3, curRcptNo: 999 }])
    await office.upsert('counters', [{ _id: 'c000004', curRcptNo: 555 }])
    await waitFor(() => rows(b).find((r) => r.id === 'c000004')?.cur_rcpt_no === 555)
    await b.sync.flush()
    expect(rows(b).find((r) => r.id === 'c000001')).toMatchObject({ branch_id: 2, cur_rcpt_no: 1 })
    expect(branches(b)).toEqual([2])
    // A removal of another branch's document does not delete B's row of it either.
    b.db.prepare(INSERT).run(counter(100, { branch_id: 3 }))
    await waitFor(async () => (await b.mesh.get('counters', 'c000100')) !== undefined)
    await office.remove('counters', ['c000100'])
    await office.upsert('counters', [{ _id: 'c000004', curRcptNo: 556 }])
    await waitFor(() => rows(b).find((r) => r.id === 'c000004')?.cur_rcpt_no === 556)
    expect(rows(b).find((r) => r.id === 'c000100')).toMatchObject({ branch_id: 3 })
    // The moved document's delivery may come after the later update's (Ditto coalesces deliveries).
    await waitFor(() => b.sync.metrics().filtered === 1, { message: 'the document that left the branch filtered' })
    // B's own counters still go out.
    b.db.prepare("UPDATE counters SET cur_rcpt_no = cur_rcpt_no + 1 WHERE id = 'c000007'").run()
    await waitFor(async () => (await b.mesh.get('counters', 'c000007'))?.curRcptNo === 8)
  })

  it('re-scopes observers when the branch changes, and catches up the new branch', async () => {
    const [office, b] = await shop({ branchId: 1 })
    await waitFor(() => rows(b).length === 10)
    const scoped: string[][] = []
    b.sync.on('context', (c) => scoped.push(c.models))
    await b.sync.setContext({ branchId: 3 })
    expect(scoped).toEqual([['counters']])
    // The new branch's existing counters were caught up; branch 1 rows stay as they were.
    expect(branches(b)).toEqual([1, 3])
    expect(rows(b)).toHaveLength(20)
    // Live changes now follow branch 3 only.
    const ofBranches = Array.from({ length: 30 }, (_, i) => i).filter((i) => i % 3 !== 1)
    await office.upsert(
      'counters',
      ofBranches.map((i) => ({ _id: counter(i).id, invcNo: 4242 })),
    )
    await waitFor(() =>
      rows(b)
        .filter((r) => r.branch_id === 3)
        .every((r) => r.invc_no === 4242),
    )
    await b.sync.flush()
    expect(
      rows(b)
        .filter((r) => r.branch_id === 1)
        .every((r) => r.invc_no !== 4242),
    ).toBe(true)
    // Switching back catches up what branch 1 missed meanwhile, from branch 1's own cursor.
    const before = b.sync.metrics().received
    await b.sync.setContext({ branchId: 1 })
    expect(
      rows(b)
        .filter((r) => r.branch_id === 1)
        .every((r) => r.invc_no === 4242),
    ).toBe(true)
    expect(b.sync.metrics().received - before).toBe(10)
  })

  it('lets an adapter pin its own context, whatever the coordinator says', async () => {
    const [, b] = await shop({ branchId: 1 }, withContext(counterAdapter, { branchId: 2 }))
    await waitFor(() => rows(b).length === 10)
    expect(branches(b)).toEqual([2])
    expect(b.sync.context()).toEqual({ branchId: 1 })
  })
})
