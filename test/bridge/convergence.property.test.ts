import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import { counter, INSERT_COUNTER } from './helpers/counter-model.js'
import { MeshLink } from './helpers/mesh-link.js'
import { openNode, type TestNode } from './helpers/node.js'
import { settle } from './helpers/settle.js'
import { tempDirs } from './helpers/wait.js'

const dirs = tempDirs()
afterAll(() => dirs.cleanup())

type Op =
  | { kind: 'write'; node: 0 | 1; id: number; field: 'cur_rcpt_no' | 'invc_no' | 'receipt_type'; value: number }
  | { kind: 'delete'; node: 0 | 1; id: number }
  | { kind: 'pull'; from: 0 | 1 }
  | { kind: 'flush'; node: 0 | 1 }
  | { kind: 'restart'; node: 0 | 1 }

const node01 = fc.constantFrom<0 | 1>(0, 1)
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('write' as const),
      node: node01,
      id: fc.integer({ min: 0, max: 4 }),
      field: fc.constantFrom('cur_rcpt_no' as const, 'invc_no' as const, 'receipt_type' as const),
      value: fc.integer({ min: 0, max: 99 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('delete' as const), node: node01, id: fc.integer({ min: 0, max: 4 }) }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('pull' as const), from: node01 }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('flush' as const), node: node01 }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const), node: node01 }) },
)

function apply(n: TestNode, o: Extract<Op, { kind: 'write' | 'delete' }>): void {
  const id = counter(o.id).id
  if (o.kind === 'delete') {
    n.db.prepare('DELETE FROM counters WHERE id = ?').run(id)
    return
  }
  const value = o.field === 'receipt_type' ? `T${o.value}` : o.value
  const exists = n.db.prepare('SELECT 1 FROM counters WHERE id = ?').get(id)
  if (exists) n.db.prepare(`UPDATE counters SET ${o.field} = ? WHERE id = ?`).run(value, id)
  else {
    const row = { ...counter(o.id), [o.field]: value }
    n.db.prepare(INSERT_COUNTER).run(row)
  }
}

/** Runs the operations on two fresh devices, then links them for good and waits until both databases and both meshes agree. */
async function converge(ops: readonly Op[]): Promise<void> {
  const paths = [dirs.make('pa'), dirs.make('pb')]
  const nodes: TestNode[] = [await openNode(paths[0]!), await openNode(paths[1]!)]
  const link = () => new MeshLink([nodes[0]!.mesh, nodes[1]!.mesh])
  try {
    for (const o of ops) {
      if (o.kind === 'pull') await link().pull(nodes[o.from]!.mesh, nodes[1 - o.from]!.mesh)
      else if (o.kind === 'flush') await nodes[o.node]!.sync.flush()
      else if (o.kind === 'restart') {
        await nodes[o.node]!.close()
        nodes[o.node] = await openNode(paths[o.node]!)
      } else apply(nodes[o.node]!, o)
    }
    // Reconnect for good and let everything settle.
    await settle(nodes[0]!, nodes[1]!)
    for (const n of nodes) expect(n.sync.metrics()).toMatchObject({ errors: 0, rejected: 0 })
  } finally {
    for (const n of nodes) await n.close()
  }
}

describe('convergence', () => {
  // Found by the property (seed -352919654). The second device's document reached the first's mesh
  // while the first's own insert and delete of that row waited in its outbox, so the document was
  // held back from the row; the delete, of a row never exchanged, sent nothing, and the held
  // document was never applied.
  it('a row inserted on both, deleted on one before it was ever sent, ends the same on both', async () => {
    await converge([
      { kind: 'write', node: 0, id: 0, field: 'cur_rcpt_no', value: 0 },
      { kind: 'write', node: 1, id: 0, field: 'cur_rcpt_no', value: 0 },
      { kind: 'restart', node: 1 },
      { kind: 'delete', node: 0, id: 0 },
      { kind: 'pull', from: 1 },
    ])
  }, 30_000)

  it('two devices end with the same rows as each other and as the mesh, whatever the interleaving', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), (ops) => converge(ops)),
      { numRuns: 60 },
    )
  }, 90_000)
})
