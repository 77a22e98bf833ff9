// Random interleavings of inserts, updates and deletes on three devices with
// keys "local", with partitions (only some devices exchange changes at a
// time) and restarts: once everyone meets, every device holds the same
// invoices with the same lines, compared by following the foreign keys and
// never by raw keys, which differ from device to device.
import fc from 'fast-check'
import { afterAll, describe, expect, it } from 'vitest'
import type { ModelDefinition } from '../../src/index.js'
import { MeshLink } from './helpers/mesh-link.js'
import { openNode, type TestNode } from './helpers/node.js'
import { plainAdapter } from './helpers/plain-adapter.js'
import { tempDirs, waitFor } from './helpers/wait.js'

const dirs = tempDirs()
afterAll(() => dirs.cleanup())

const DDL = `
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS invoices (id INTEGER PRIMARY KEY, number TEXT NOT NULL, total INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS invoice_lines (
  id INTEGER PRIMARY KEY,
  invoice_id INTEGER NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
  qty INTEGER NOT NULL
);
`
const MODELS: ModelDefinition[] = [
  { name: 'invoices', keys: 'local' },
  { name: 'invoice_lines', keys: 'local' },
]

type Node3 = 0 | 1 | 2
type Op =
  | { kind: 'sell'; node: Node3; lines: number[] }
  | { kind: 'update'; node: Node3; pick: number; total: number }
  | { kind: 'line'; node: Node3; pick: number; qty: number }
  | { kind: 'delete'; node: Node3; pick: number }
  | { kind: 'pull'; from: Node3; to: Node3 }
  | { kind: 'restart'; node: Node3 }

const node = fc.constantFrom<Node3>(0, 1, 2)
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('sell' as const),
      node,
      lines: fc.array(fc.integer({ min: 1, max: 9 }), { maxLength: 3 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('update' as const),
      node,
      pick: fc.nat(),
      total: fc.integer({ min: 0, max: 999 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('line' as const),
      node,
      pick: fc.nat(),
      qty: fc.integer({ min: 1, max: 9 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), node, pick: fc.nat() }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('pull' as const), from: node, to: node }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const), node }) },
)

function open(dir: string): Promise<TestNode> {
  return openNode(dir, {
    ddl: DDL,
    models: MODELS,
    adapters: MODELS.map((m) => plainAdapter(m.name)),
    countWrites: false,
  }) as Promise<TestNode>
}

/** The invoice ids of a device, in invoice-number order. */
function invoiceIds(n: TestNode): number[] {
  return n.db.prepare('SELECT id FROM invoices ORDER BY number').pluck().all() as number[]
}

/** Every invoice by number with its total and its lines' quantities, found through the foreign key. */
function content(n: TestNode): string {
  const invoices = n.db.prepare('SELECT id, number, total FROM invoices ORDER BY number').all() as {
    id: number
    number: string
    total: number
  }[]
  return JSON.stringify(
    invoices.map((i) => [
      i.number,
      i.total,
      n.db.prepare('SELECT qty FROM invoice_lines WHERE invoice_id = ? ORDER BY qty').pluck().all(i.id),
    ]),
  )
}

describe('keys "local" under random interleavings', () => {
  it('three devices converge to the same invoices and lines, whatever the order and partitions', async () => {
    let run = 0
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 30 }), async (ops) => {
        run++
        const paths = [dirs.make('p0'), dirs.make('p1'), dirs.make('p2')]
        const nodes: TestNode[] = []
        for (const p of paths) nodes.push(await open(p))
        let sold = 0
        try {
          for (const o of ops) {
            if (process.env.MM_DEBUG === '1') console.log(run, Date.now() % 100000, JSON.stringify(o))
            if (o.kind === 'pull') {
              if (o.from === o.to) continue
              await nodes[o.from]!.sync.flush()
              await new MeshLink([nodes[o.from]!.mesh, nodes[o.to]!.mesh]).pull(nodes[o.from]!.mesh, nodes[o.to]!.mesh)
            } else if (o.kind === 'restart') {
              await nodes[o.node]!.close()
              nodes[o.node] = await open(paths[o.node]!)
            } else {
              const n = nodes[o.node]!
              const ids = invoiceIds(n)
              const picked = ids.length === 0 ? undefined : ids[('pick' in o ? o.pick : 0) % ids.length]
              if (o.kind === 'sell') {
                const id = n.db
                  .prepare('INSERT INTO invoices (number, total) VALUES (?, ?)')
                  .run(`${run}-${o.node}-${sold++}`, 0).lastInsertRowid
                for (const q of o.lines)
                  n.db.prepare('INSERT INTO invoice_lines (invoice_id, qty) VALUES (?, ?)').run(id, q)
              } else if (picked === undefined) {
              } else if (o.kind === 'update') {
                n.db.prepare('UPDATE invoices SET total = ? WHERE id = ?').run(o.total, picked)
              } else if (o.kind === 'line') {
                n.db.prepare('INSERT INTO invoice_lines (invoice_id, qty) VALUES (?, ?)').run(picked, o.qty)
              } else {
                n.db.prepare('DELETE FROM invoices WHERE id = ?').run(picked)
              }
            }
          }
          // Everyone meets and settles.
          const link = new MeshLink(nodes.map((n) => n.mesh))
          await waitFor(
            async () => {
              for (const n of nodes) await n.sync.flush()
              await link.sync()
              for (const n of nodes) await n.sync.flush()
              const first = content(nodes[0]!)
              return nodes.every((n) => content(n) === first)
            },
            { timeout: 10_000, interval: 10, message: 'the devices to converge' },
          ).catch(async (e) => {
            if (process.env.MM_DEBUG === '1') {
              console.log(JSON.stringify(ops))
              for (const n of nodes) console.log(content(n), await n.repo.parked({ limit: 10 }), n.sync.metrics())
            }
            throw e
          })
          // Each device holds every invoice once, and no line without its invoice.
          for (const n of nodes) {
            const numbers = n.db.prepare('SELECT number FROM invoices').pluck().all() as string[]
            expect(new Set(numbers).size).toBe(numbers.length)
            expect(
              n.db
                .prepare(
                  'SELECT count(*) FROM invoice_lines l LEFT JOIN invoices i ON i.id = l.invoice_id WHERE i.id IS NULL',
                )
                .pluck()
                .get(),
            ).toBe(0)
            expect(n.sync.metrics()).toMatchObject({ errors: 0, rejected: 0 })
          }
          const docs = await nodes[0]!.mesh.find({ collection: 'invoices' })
          expect(docs.length).toBe(invoiceIds(nodes[0]!).length)
        } finally {
          for (const n of nodes) await n.close()
        }
      }),
      { numRuns: 60, endOnFailure: process.env.MM_DEBUG === '1' },
    )
  }, 120_000)
})
