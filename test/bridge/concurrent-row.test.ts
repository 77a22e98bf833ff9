import { afterAll, describe, expect, it } from 'vitest'
import { counter, counterAdapter, INSERT_COUNTER } from './helpers/counter-model.js'
import { MeshLink } from './helpers/mesh-link.js'
import { openNode, rows, type TestNode } from './helpers/node.js'
import { settle } from './helpers/settle.js'
import { tempDirs } from './helpers/wait.js'

const dirs = tempDirs()
afterAll(() => dirs.cleanup())

const ID = counter(1).id
const link = (a: TestNode, b: TestNode) => new MeshLink([a.mesh, b.mesh])
const insert = (n: TestNode, curRcptNo: number) =>
  n.db.prepare(INSERT_COUNTER).run({ ...counter(1), cur_rcpt_no: curRcptNo })
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
