import { afterEach, describe, expect, it } from 'vitest'
import { rejectDocument } from '../../src/bridge/adapter.js'
import { MeshLink } from './helpers/mesh-link.js'
import { openNode, type TestNode } from './helpers/node.js'
import { plainAdapter } from './helpers/plain-adapter.js'
import { tempDirs, waitFor } from './helpers/wait.js'

const dirs = tempDirs()
const nodes: TestNode[] = []

afterEach(async () => {
  for (const n of nodes.splice(0)) await n.close()
  dirs.cleanup()
})

const DDL = `
CREATE TABLE IF NOT EXISTS branches (id TEXT PRIMARY KEY, name TEXT NOT NULL, last_order TEXT);
CREATE TABLE IF NOT EXISTS orders (id TEXT PRIMARY KEY, branch TEXT NOT NULL, total REAL NOT NULL);
CREATE TABLE IF NOT EXISTS items (id TEXT PRIMARY KEY, order_id TEXT NOT NULL, qty INTEGER NOT NULL);
`
const models = [{ name: 'branches' }, { name: 'orders' }, { name: 'items' }]
// Links form a cycle: orders → branches → orders.
const adapters = () => [
  plainAdapter('branches', { links: [{ field: 'last_order', model: 'orders', cascade: true }] }),
  plainAdapter('orders', {
    links: [{ field: 'branch', model: 'branches', cascade: true }],
    fromDocument: (doc) => {
      if (typeof doc.total !== 'number') rejectDocument('total is not a number')
      return { id: doc._id, branch: doc.branch ?? null, total: doc.total }
    },
  }),
  plainAdapter('items', { links: [{ field: 'order_id', model: 'orders', cascade: true }] }),
]

async function setup(): Promise<{ a: TestNode; b: TestNode }> {
  const a = await openNode(dirs.make('a'), { ddl: DDL, models, adapters: adapters(), countWrites: false })
  nodes.push(a)
  a.db.exec(`
    INSERT INTO branches VALUES ('b1', 'Kigali', 'o2'), ('b2', 'Huye', NULL);
    INSERT INTO orders VALUES ('o1', 'b1', 10.5), ('o2', 'b1', 20), ('o3', 'b2', 7);
    INSERT INTO items VALUES ('i1', 'o1', 1), ('i2', 'o1', 2), ('i3', 'o2', 3), ('i4', 'o3', 4);
  `)
  await a.sync.flush()
  // B lost its database: its mesh has everything, its tables nothing, and it does not catch up by itself.
  const bDir = dirs.make('b')
  const b = await openNode(bDir, {
    ddl: DDL,
    models,
    adapters: adapters(),
    countWrites: false,
    start: false,
    settings: { skipInitialFetch: true },
  })
  nodes.push(b)
  await new MeshLink([a.mesh, b.mesh]).pull(a.mesh, b.mesh)
  await b.registry.start()
  return { a, b }
}

const ids = (n: TestNode, table: string) =>
  (n.db.prepare(`SELECT id FROM ${table} ORDER BY id`).pluck().all() as string[]).join(',')

describe('backup restore', () => {
  it('restores documents and follows links recursively, stopping at cycles', async () => {
    const { b } = await setup()
    expect(ids(b, 'items')).toBe('')
    const report = await b.sync.restore('items', { filter: { order_id: 'o1' } })
    expect(ids(b, 'items')).toBe('i1,i2')
    expect(ids(b, 'orders')).toBe('o1,o2')
    expect(ids(b, 'branches')).toBe('b1')
    expect(report.documents).toBe(5)
    expect(report.models).toEqual({
      items: { found: 2, applied: 2, unchanged: 0, deferred: 0, rejected: 0, filtered: 0 },
      orders: { found: 2, applied: 2, unchanged: 0, deferred: 0, rejected: 0, filtered: 0 },
      branches: { found: 1, applied: 1, unchanged: 0, deferred: 0, rejected: 0, filtered: 0 },
    })
    expect(b.db.prepare("SELECT * FROM orders WHERE id = 'o1'").get()).toEqual({ id: 'o1', branch: 'b1', total: 10.5 })
    // Restored rows are remote applies: nothing goes back to the mesh.
    await b.sync.flush()
    expect(b.meshWrites.changed).toBe(0)

    // Again: everything is already there.
    const again = await b.sync.restore('items', { filter: { order_id: 'o1' } })
    expect(again.models.items).toMatchObject({ found: 2, applied: 0, unchanged: 2 })
  })

  it('restores a whole model without links, and counts refusals', async () => {
    const { a, b } = await setup()
    await a.mesh.upsert('orders', [{ _id: 'o9', branch: 'b2', total: 'not a number' }])
    await new MeshLink([a.mesh, b.mesh]).pull(a.mesh, b.mesh)
    const report = await b.sync.restore('orders', { followLinks: false })
    expect(ids(b, 'orders')).toBe('o1,o2,o3')
    expect(ids(b, 'branches')).toBe('')
    expect(report.models.orders).toEqual({ found: 4, applied: 3, unchanged: 0, deferred: 0, rejected: 1, filtered: 0 })
    // Refused once when it arrived live, once more by the restore.
    await waitFor(() => b.sync.metrics().rejectedByReason['invalid-document'] === 2)
    expect(b.sync.metrics().rejectedByReason).toEqual({ 'invalid-document': 2 })
  })

  it('refuses to restore a model whose backup is disabled, or that has no adapter', async () => {
    const a = await openNode(dirs.make('a'), {
      ddl: DDL,
      models,
      adapters: [plainAdapter('branches', { backup: { enabled: false } })],
      countWrites: false,
    })
    nodes.push(a)
    await expect(a.sync.restore('branches')).rejects.toThrow(/disabled/)
    await expect(a.sync.restore('orders')).rejects.toThrow(/No adapter/)
  })

  it('restores a model this device only sends, which it otherwise never receives', async () => {
    const { a } = await setup()
    // C sends orders but never receives them; its database was lost.
    const c = await openNode(dirs.make('c'), {
      ddl: DDL,
      models,
      adapters: [plainAdapter('orders', { direction: 'sendOnly' })],
      countWrites: false,
    })
    nodes.push(c)
    await new MeshLink([a.mesh, c.mesh]).pull(a.mesh, c.mesh)
    await c.sync.flush()
    expect(ids(c, 'orders')).toBe('')
    const report = await c.sync.restore('orders', { filter: { branch: 'b1' } })
    expect(ids(c, 'orders')).toBe('o1,o2')
    expect(report.models.orders).toMatchObject({ found: 2, applied: 2 })
    await c.sync.flush()
    expect(c.meshWrites.changed).toBe(0)
  })
})
