import { afterEach, describe, expect, it } from 'vitest'
import { counter } from './helpers/counter-model.js'
import { MeshLink } from './helpers/mesh-link.js'
import { openNode, rows, type TestNode } from './helpers/node.js'
import { tempDirs, waitFor } from './helpers/wait.js'

const dirs = tempDirs()
const nodes: TestNode[] = []

afterEach(async () => {
  for (const n of nodes.splice(0)) await n.close()
  dirs.cleanup()
})

function bulkInsert(node: TestNode, n: number): void {
  const stmt = node.db.prepare(
    'INSERT INTO counters (id, branch_id, business_id, receipt_type, tot_rcpt_no, cur_rcpt_no, invc_no, bhf_id, last_touched, created_at) VALUES (@id, @branch_id, @business_id, @receipt_type, @tot_rcpt_no, @cur_rcpt_no, @invc_no, @bhf_id, @last_touched, @created_at)',
  )
  node.db.transaction(() => {
    for (let i = 0; i < n; i++) stmt.run(counter(i))
  })()
}

describe('restart', () => {
  it('applies exactly what changed while away: 1,000 of 100,000 rows, and writes nothing else', async () => {
    const N = 100_000
    const dirA = dirs.make('a')
    const dirB = dirs.make('b')
    // A's database predates sync: seeding sends its rows.
    const seedA = await openNode(dirA, { start: false })
    bulkInsert(seedA, N)
    await seedA.registry.start()
    nodes.push(seedA)
    const a = seedA
    let b = await openNode(dirB)
    const link = new MeshLink([a.mesh, b.mesh])
    await link.sync()
    await waitFor(() => b.writes() === N, { timeout: 60_000, message: 'B holding every row' })
    await b.close()

    // While B is down, A changes 1,000 rows.
    a.db.prepare("UPDATE counters SET cur_rcpt_no = cur_rcpt_no + 1 WHERE id <= 'c000999'").run()
    await a.sync.flush()

    // B restarts: its mesh receives A's changes, then sync catches up from the stored cursor.
    b = await openNode(dirB, { start: false })
    nodes.push(b)
    const before = b.writes()
    expect(before).toBe(N)
    expect(await new MeshLink([a.mesh, b.mesh]).pull(a.mesh, b.mesh)).toBe(1000)
    const report = await b.registry.start()
    expect(report.catchUp.counters?.changed).toBe(1000)
    expect(report.catchUp.counters?.reset).toBe(false)
    expect(report.seeded.counters?.alreadyDone).toBe(true)
    expect(b.writes() - before).toBe(1000)
    expect(b.meshWrites.changed).toBe(0)
    const m = b.sync.metrics()
    expect(m.applied).toBe(1000)
    expect(m.received).toBe(1000)
    expect(b.db.prepare('SELECT count(*) FROM counters WHERE cur_rcpt_no = tot_rcpt_no + 1').pluck().get()).toBe(1000)
    expect(rows(b)).toEqual(rows(a))
  }, 90_000)
})
