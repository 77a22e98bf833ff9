import { afterAll, describe, expect, it } from 'vitest'
import { type JsonValue, jsonEqual } from '../../src/index.js'
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

const ID = counter(1).id
const link = (a: TestNode, b: TestNode) => new MeshLink([a.mesh, b.mesh])
const insert = (n: TestNode, curRcptNo: number) => n.db.prepare(INSERT).run({ ...counter(1), cur_rcpt_no: curRcptNo })
const remove = (n: TestNode) => n.db.prepare('DELETE FROM counters WHERE id = ?').run(ID)

/** Two devices for one test, closed afterwards. */
async function withPair(run: (a: TestNode, b: TestNode) => Promise<void>): Promise<void> {
  const a = await openNode(dirs.make('ra'))
  const b = await openNode(dirs.make('rb'))
  try {
    await run(a, b)
    for (const n of [a, b]) expect(n.sync.metrics()).toMatchObject({ errors: 0, rejected: 0 })
  } finally {
    await a.close()
    await b.close()
  }
}

describe('a row removed on one device while another changes it', () => {
  it('is removed everywhere when the other device had seen it: a removal wins over changes concurrent with it', () =>
    withPair(async (a, b) => {
      insert(a, 0)
      await settle(a, b)
      expect(rows(b)).toHaveLength(1)
      remove(a)
      await a.sync.flush()
      b.db.prepare('UPDATE counters SET cur_rcpt_no = 7 WHERE id = ?').run(ID)
      await b.sync.flush()
      await settle(a, b)
      // No fragment of the document (only the changed field) comes back.
      expect(rows(a)).toEqual([])
      expect(rows(b)).toEqual([])
      expect(await a.mesh.get('counters', ID)).toBeUndefined()
    }))

  it('is removed everywhere when the other device wrote it over the mesh copy it had just learned', () =>
    withPair(async (a, b) => {
      insert(a, 0)
      insert(b, 1)
      await a.sync.flush()
      // B's mesh learns A's document while B's own row waits to be sent.
      await link(a, b).pull(a.mesh, b.mesh)
      remove(a)
      await link(a, b).pull(b.mesh, a.mesh)
      await settle(a, b)
      expect(rows(a)).toEqual([])
      expect(rows(b)).toEqual([])
    }))

  it('comes back whole when created again after the removal was seen', () =>
    withPair(async (a, b) => {
      insert(a, 0)
      await settle(a, b)
      remove(a)
      await settle(a, b)
      expect(rows(b)).toEqual([])
      insert(b, 0)
      await settle(a, b)
      expect(rows(a)).toEqual([{ ...counter(1), cur_rcpt_no: 0 }])
      expect(await a.mesh.get('counters', ID)).toEqual(counterAdapter.toDocument({ ...counter(1), cur_rcpt_no: 0 }))
    }))
})
