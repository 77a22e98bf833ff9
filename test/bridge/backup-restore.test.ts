import { afterEach, describe, expect, it } from 'vitest'
import { type MeshStore, rejectDocument } from '../../src/index.js'
import { BACKENDS, type NodeOptions, openNode, type TestNode } from './helpers/node.js'
import { plainAdapter } from './helpers/plain-adapter.js'
import { type RemoteSite, remoteSite } from './helpers/remote.js'
import { tempDirs, waitFor } from './helpers/wait.js'

const dirs = tempDirs()
const closers: (() => Promise<unknown>)[] = []

afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c()
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

/** What the other devices put in the mesh: the documents of these rows. */
const DOCS = {
  branches: [
    { _id: 'b1', name: 'Kigali', last_order: 'o2' },
    { _id: 'b2', name: 'Huye', last_order: null },
  ],
  orders: [
    { _id: 'o1', branch: 'b1', total: 10.5 },
    { _id: 'o2', branch: 'b1', total: 20 },
    { _id: 'o3', branch: 'b2', total: 7 },
  ],
  items: [
    { _id: 'i1', order_id: 'o1', qty: 1 },
    { _id: 'i2', order_id: 'o1', qty: 2 },
    { _id: 'i3', order_id: 'o2', qty: 3 },
    { _id: 'i4', order_id: 'o3', qty: 4 },
  ],
}

async function fillMesh(site: RemoteSite): Promise<void> {
  for (const [collection, docs] of Object.entries(DOCS)) await site.upsert(collection, docs)
}

describe.each(BACKENDS)('backup restore on the %s mesh', (backend) => {
  async function node(options: Partial<NodeOptions> = {}): Promise<TestNode<MeshStore>> {
    const n = await openNode(dirs.make('b'), {
      ddl: DDL,
      models,
      adapters: adapters(),
      countWrites: false,
      ...options,
      backend,
    })
    closers.push(() => n.close())
    return n
  }

  async function site(n: TestNode<MeshStore>): Promise<RemoteSite> {
    const s = await remoteSite(backend, n.mesh, dirs.make('site'))
    closers.push(() => s.close())
    return s
  }

  /** B lost its database: its mesh has everything, its tables nothing, and it does not catch up by itself. */
  async function setup(): Promise<{ b: TestNode<MeshStore>; other: RemoteSite }> {
    const b = await node({ start: false, settings: { skipInitialFetch: true } })
    // Written through the store, so it counts them as known (on Ditto, changes written
    // around it are noticed only by the next reconcile, which the first pull makes).
    for (const [collection, docs] of Object.entries(DOCS)) await b.mesh.upsert(collection, docs)
    await b.registry.start()
    return { b, other: await site(b) }
  }

  const ids = (n: TestNode<MeshStore>, table: string) =>
    (n.db.prepare(`SELECT id FROM ${table} ORDER BY id`).pluck().all() as string[]).join(',')

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
    const { b, other } = await setup()
    await other.upsert('orders', [{ _id: 'o9', branch: 'b2', total: 'not a number' }])
    const report = await b.sync.restore('orders', { followLinks: false })
    expect(ids(b, 'orders')).toBe('o1,o2,o3')
    expect(ids(b, 'branches')).toBe('')
    expect(report.models.orders).toEqual({ found: 4, applied: 3, unchanged: 0, deferred: 0, rejected: 1, filtered: 0 })
    // Refused once when it arrived live, once more by the restore.
    await waitFor(() => b.sync.metrics().rejectedByReason['invalid-document'] === 2)
    expect(b.sync.metrics().rejectedByReason).toEqual({ 'invalid-document': 2 })
  })

  it('refuses to restore a model whose backup is disabled, or that has no adapter', async () => {
    const a = await node({ adapters: [plainAdapter('branches', { backup: { enabled: false } })] })
    await expect(a.sync.restore('branches')).rejects.toThrow(/disabled/)
    await expect(a.sync.restore('orders')).rejects.toThrow(/No adapter/)
  })

  it('restores a model this device only sends, which it otherwise never receives', async () => {
    // C sends orders but never receives them; its database was lost.
    const c = await node({ adapters: [plainAdapter('orders', { direction: 'sendOnly' })] })
    await fillMesh(await site(c))
    await c.sync.flush()
    expect(ids(c, 'orders')).toBe('')
    const report = await c.sync.restore('orders', { filter: { branch: 'b1' } })
    expect(ids(c, 'orders')).toBe('o1,o2')
    expect(report.models.orders).toMatchObject({ found: 2, applied: 2 })
    await c.sync.flush()
    expect(c.meshWrites.changed).toBe(0)
  })
})
