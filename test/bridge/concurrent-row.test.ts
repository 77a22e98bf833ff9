import { afterAll, describe, expect, it } from 'vitest'
import type { JsonValue } from '../../src/mesh/document.js'
import { jsonEqual } from '../../src/mesh/json.js'
import { type CounterRow, counter, counterAdapter } from './helpers/counter-model.js'
import { MeshLink } from './helpers/mesh-link.js'
import { openNode, rows, type TestNode } from './helpers/node.js'
import { tempDirs, waitFor } from './helpers/wait.js'

const dirs = tempDirs()
afterAll(() => dirs.cleanup())

const INSERT =
  'INSERT INTO counters (id, branch_id, business_id, receipt_type, tot_rcpt_no, cur_rcpt_no, invc_no, bhf_id, last_touched, created_at) VALUES (@id, @branch_id, @business_id, @receipt_type, @tot_rcpt_no, @cur_rcpt_no, @invc_no, @bhf_id, @last_touched, @created_at)'

/** Syncs both ways until rows, meshes and mirrored documents agree. */
async function settle(a: TestNode, b: TestNode): Promise<void> {
  await waitFor(
    async () => {
      await a.sync.flush()
      await b.sync.flush()
      await new MeshLink([a.mesh, b.mesh]).sync()
      const docsA = await a.mesh.find({ collection: 'counters', orderBy: '_id' })
      const docsB = await b.mesh.find({ collection: 'counters', orderBy: '_id' })
      const mirrored = (rows(a) as CounterRow[]).map((r) => counterAdapter.toDocument(r))
      return (
        jsonEqual(rows(a) as JsonValue, rows(b) as JsonValue) && jsonEqual(docsA, docsB) && jsonEqual(mirrored, docsA)
      )
    },
    { timeout: 5_000, interval: 10, message: 'convergence' },
  )
}

describe('a row created on one device while another removes it', () => {
  it('ends whole on both devices: the later creation writes every field, not only those that differ', async () => {
    const a = await openNode(dirs.make('ra'))
    const b = await openNode(dirs.make('rb'))
    try {
      a.db.prepare(INSERT).run({ ...counter(1), cur_rcpt_no: 0 })
      b.db.prepare(INSERT).run({ ...counter(1), cur_rcpt_no: 1 })
      await a.sync.flush()
      // B's mesh learns A's document while B's own row waits to be sent.
      await new MeshLink([a.mesh, b.mesh]).pull(a.mesh, b.mesh)
      a.db.prepare('DELETE FROM counters WHERE id = ?').run(counter(1).id)
      await new MeshLink([a.mesh, b.mesh]).pull(b.mesh, a.mesh)
      await settle(a, b)
      expect(rows(a)).toEqual([{ ...counter(1), cur_rcpt_no: 1 }])
      expect(await a.mesh.get('counters', counter(1).id)).toEqual(
        counterAdapter.toDocument({ ...counter(1), cur_rcpt_no: 1 }),
      )
      for (const n of [a, b]) expect(n.sync.metrics()).toMatchObject({ errors: 0, rejected: 0 })
    } finally {
      await a.close()
      await b.close()
    }
  })
})
