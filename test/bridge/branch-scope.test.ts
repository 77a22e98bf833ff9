import { afterEach, describe, expect, it } from 'vitest'
import { withContext } from '../../src/bridge/adapter.js'
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

async function shop(
  bContext: Record<string, number>,
  bAdapter = counterAdapter,
): Promise<[TestNode, TestNode, MeshLink]> {
  // A is the back office: it holds and receives every branch's counters.
  const a = await openNode(dirs.make('a'), { adapters: [{ ...counterAdapter, observerQuery: () => ({}) }] })
  const b = await openNode(dirs.make('b'), { context: bContext, adapters: [bAdapter] })
  nodes.push(a, b)
  const link = new MeshLink([a.mesh, b.mesh])
  links.push(link)
  link.live()
  const insert = a.db.prepare(INSERT)
  for (let i = 0; i < 30; i++) insert.run(counter(i, { branch_id: (i % 3) + 1, bhf_id: `0${(i % 3) + 1}` }))
  return [a, b, link]
}

const branches = (n: TestNode) => [...new Set(rows(n).map((r) => r.branch_id))].sort()

describe("the seed's counter model with a branch-scoped observer", () => {
  it('never applies documents of another branch', async () => {
    const [a, b, link] = await shop({ branchId: 2 })
    await waitFor(() => rows(b).length === 10, { message: "branch 2's counters in B" })
    await a.sync.flush()
    await link.settled()
    await b.sync.flush()
    expect(branches(b)).toEqual([2])
    // A document moving out of the branch is not applied either; the row keeps its last in-scope content.
    a.db.prepare("UPDATE counters SET branch_id = 3, cur_rcpt_no = 999 WHERE id = 'c000001'").run()
    a.db.prepare("UPDATE counters SET cur_rcpt_no = 555 WHERE id = 'c000004'").run()
    await waitFor(() => rows(b).find((r) => r.id === 'c000004')?.cur_rcpt_no === 555)
    await a.sync.flush()
    await link.settled()
    await b.sync.flush()
    expect(rows(b).find((r) => r.id === 'c000001')).toMatchObject({ branch_id: 2, cur_rcpt_no: 1 })
    expect(branches(b)).toEqual([2])
    // A removal of another branch's document does not delete B's row of it either.
    b.db.prepare(INSERT).run(counter(100, { branch_id: 3 }))
    await waitFor(() => rows(a).some((r) => r.id === 'c000100'))
    a.db.prepare("DELETE FROM counters WHERE id = 'c000100'").run()
    a.db.prepare("UPDATE counters SET cur_rcpt_no = 556 WHERE id = 'c000004'").run()
    await waitFor(() => rows(b).find((r) => r.id === 'c000004')?.cur_rcpt_no === 556)
    expect(rows(b).find((r) => r.id === 'c000100')).toMatchObject({ branch_id: 3 })
    expect(b.sync.metrics().filtered).toBe(1)
    // B's own counters still go out.
    b.db.prepare("UPDATE counters SET cur_rcpt_no = cur_rcpt_no + 1 WHERE id = 'c000007'").run()
    await waitFor(() => rows(a).find((r) => r.id === 'c000007')?.cur_rcpt_no === 8)
  })

  it('re-scopes observers when the branch changes, and catches up the new branch', async () => {
    const [a, b, link] = await shop({ branchId: 1 })
    await waitFor(() => rows(b).length === 10)
    const scoped: string[][] = []
    b.sync.on('context', (c) => scoped.push(c.models))
    await b.sync.setContext({ branchId: 3 })
    expect(scoped).toEqual([['counters']])
    // The new branch's existing counters were caught up; branch 1 rows stay as they were.
    expect(branches(b)).toEqual([1, 3])
    expect(rows(b)).toHaveLength(20)
    // Live changes now follow branch 3 only.
    a.db.prepare('UPDATE counters SET invc_no = 4242 WHERE branch_id IN (1, 3)').run()
    await waitFor(() =>
      rows(b)
        .filter((r) => r.branch_id === 3)
        .every((r) => r.invc_no === 4242),
    )
    await a.sync.flush()
    await link.settled()
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
