import { afterEach, describe, expect, it } from 'vitest'
import { defineModel, type SyncSettings } from '../../src/index.js'
import { MeshLink } from './helpers/mesh-link.js'
import { openNode, rows, type TestNode } from './helpers/node.js'
import { tempDirs, waitFor } from './helpers/wait.js'

const dirs = tempDirs()
const nodes: TestNode[] = []
let link: MeshLink | undefined

afterEach(async () => {
  link?.stop()
  link = undefined
  for (const n of nodes.splice(0)) await n.close()
  dirs.cleanup()
})

const PRODUCTS_DDL =
  'CREATE TABLE IF NOT EXISTS products (id TEXT PRIMARY KEY, name TEXT NOT NULL, stock INTEGER NOT NULL)'

function products(counter: boolean) {
  return defineModel({
    collection: 'products',
    fields: {
      id: { type: 'string', id: true },
      name: 'string',
      stock: { type: 'integer', counter },
    },
  })
}

async function pair(counter: boolean, settings: SyncSettings = {}): Promise<[TestNode, TestNode]> {
  const { adapter, definition } = products(counter)
  const options = { ddl: PRODUCTS_DDL, adapters: [adapter], models: [definition], context: {}, settings }
  const a = await openNode(dirs.make('a'), options)
  const b = await openNode(dirs.make('b'), options)
  nodes.push(a, b)
  link = new MeshLink([a.mesh, b.mesh])
  return [a, b]
}

const stock = (n: TestNode, id: string) => n.db.prepare('SELECT stock FROM products WHERE id = ?').pluck().get(id)

describe('counter fields', () => {
  it('send local changes as increments, so concurrent decrements on two devices all count', async () => {
    const [a, b] = await pair(true)
    link!.live()
    a.db.prepare("INSERT INTO products (id, name, stock) VALUES ('p1', 'tea', 100), ('p2', 'milk', 50)").run()
    await waitFor(() => rows(b, 'products').length === 2, { message: 'products in B' })
    // Partitioned: both sell from the same stock.
    link!.stop()
    const sell = (n: TestNode, id: string, qty: number) =>
      n.db.prepare('UPDATE products SET stock = stock - ? WHERE id = ?').run(qty, id)
    for (let i = 0; i < 5; i++) {
      sell(a, 'p1', 2)
      sell(b, 'p1', 3)
      await a.sync.flush()
      await b.sync.flush()
    }
    sell(b, 'p2', 1)
    b.db.prepare("UPDATE products SET name = 'green tea' WHERE id = 'p1'").run()
    await a.sync.flush()
    await b.sync.flush()
    expect(stock(a, 'p1')).toBe(90)
    expect(stock(b, 'p1')).toBe(85)
    link = new MeshLink([a.mesh, b.mesh])
    link.live()
    await link.sync()
    await waitFor(() => stock(a, 'p1') === 75 && stock(b, 'p1') === 75, { message: 'stock 100 - 10 - 15 on both' })
    await waitFor(() => JSON.stringify(rows(a, 'products')) === JSON.stringify(rows(b, 'products')), {
      message: 'identical products',
    })
    expect(rows(a, 'products')).toEqual([
      { id: 'p1', name: 'green tea', stock: 75 },
      { id: 'p2', name: 'milk', stock: 49 },
    ])
    expect((await a.mesh.get('products', 'p1'))?.stock).toBe(75)
  })

  it('without the counter flag the same field merges by last writer (the contrast)', async () => {
    const [a, b] = await pair(false)
    link!.live()
    a.db.prepare("INSERT INTO products (id, name, stock) VALUES ('p1', 'tea', 100)").run()
    await waitFor(() => rows(b, 'products').length === 1, { message: 'product in B' })
    link!.stop()
    a.db.prepare("UPDATE products SET stock = stock - 2 WHERE id = 'p1'").run()
    b.db.prepare("UPDATE products SET stock = stock - 3 WHERE id = 'p1'").run()
    await a.sync.flush()
    await b.sync.flush()
    link = new MeshLink([a.mesh, b.mesh])
    link.live()
    await link.sync()
    await waitFor(() => stock(a, 'p1') === stock(b, 'p1'), { message: 'converged' })
    expect([98, 97]).toContain(stock(a, 'p1'))
  })

  it('send an increment once when the mesh took the batch but its acknowledgement failed', async () => {
    const [a] = await pair(true)
    a.db.prepare("INSERT INTO products (id, name, stock) VALUES ('p1', 'tea', 100)").run()
    await a.sync.flush()
    expect((await a.mesh.get('products', 'p1'))?.stock).toBe(100)
    // The repository transaction that acknowledges the next batch fails once, after the
    // mesh committed it: what a crash between the two commits leaves behind.
    const transaction = a.repo.transaction.bind(a.repo)
    let failures = 0
    a.repo.transaction = (async (
      fn: Parameters<typeof transaction>[0],
      options?: Parameters<typeof transaction>[1],
    ) => {
      if (failures++ === 0) throw new Error('the process died here')
      return transaction(fn, options)
    }) as typeof transaction
    a.db.prepare("UPDATE products SET stock = stock - 2 WHERE id = 'p1'").run()
    await waitFor(async () => (await a.repo.pendingChangeCount(['products'])).count === 0 && failures > 1, {
      message: 'the batch acknowledged on retry',
    })
    expect((await a.mesh.get('products', 'p1'))?.stock).toBe(98)
    expect(stock(a, 'p1')).toBe(98)
  })
  it('send each decrement once when the outbox holds more than one batch and the app sells during the drain', async () => {
    // A backlog longer than one drain batch is what a till that was down leaves behind.
    const [a] = await pair(true, { drainBatchSize: 1 })
    const sell = (qty: number) => a.db.prepare("UPDATE products SET stock = stock - ? WHERE id = 'p1'").run(qty)
    a.db.prepare("INSERT INTO products (id, name, stock) VALUES ('p1', 'tea', 100)").run()
    await a.sync.flush()
    expect((await a.mesh.get('products', 'p1'))?.stock).toBe(100)
    let sold = 0
    // The app sells again right after the first batch went out, before the next one is read.
    const off = a.registry.on('pushed', () => {
      if (sold === 2) {
        sell(1)
        sold += 1
      }
    })
    sell(1)
    sell(1)
    sold = 2
    await waitFor(async () => sold === 3 && (await a.repo.pendingChangeCount(['products'])).count === 0, {
      message: 'every sale sent',
    })
    off()
    await a.sync.flush()
    expect((await a.mesh.get('products', 'p1'))?.stock).toBe(97)
    expect(stock(a, 'p1')).toBe(97)
  })
  it('send an increment once when a restart follows the very first batch, left unacknowledged', async () => {
    const dir = dirs.make('first')
    const a = await openNode(dir, seededProducts())
    expect((await a.mesh.get('products', 'p1'))?.stock).toBe(100)
    const crash = crashBeforeAcknowledgement(a)
    a.db.prepare("UPDATE products SET stock = stock - 2 WHERE id = 'p1'").run()
    await waitFor(async () => crash.failures() > 0 && (await a.mesh.get('products', 'p1'))?.stock === 98, {
      message: 'the batch in the mesh, unacknowledged',
    })
    await crash.stop()
    const again = await openNode(dir, seededProducts())
    nodes.push(again)
    await again.sync.flush()
    expect((await again.repo.pendingChangeCount(['products'])).count).toBe(0)
    expect((await again.mesh.get('products', 'p1'))?.stock).toBe(98)
    expect(stock(again, 'p1')).toBe(98)
  })

  it('send an increment once when the mesh refused another document of its batch and a restart follows', async () => {
    const dir = dirs.make('refused')
    const a = await openNode(dir, seededProducts())
    const refused: string[] = []
    a.registry.on('rejected', (r) => refused.push(`${r.id} ${r.reason}`))
    await a.sync.flush()
    const crash = crashBeforeAcknowledgement(a)
    // One transaction, one batch: a sale, and a name the mesh refuses (over its document size limit).
    a.db.transaction(() => {
      a.db.prepare("UPDATE products SET stock = stock - 2 WHERE id = 'p1'").run()
      a.db.prepare("UPDATE products SET name = ? WHERE id = 'p2'").run('x'.repeat(2 * 1024 * 1024))
    })()
    await waitFor(async () => crash.failures() > 0 && (await a.mesh.get('products', 'p1'))?.stock === 98, {
      message: 'the sale in the mesh, unacknowledged',
    })
    expect(refused).toContain('p2 mesh-refused')
    await crash.stop()
    const again = await openNode(dir, seededProducts())
    nodes.push(again)
    await again.sync.flush()
    expect((await again.repo.pendingChangeCount(['products'])).count).toBe(0)
    expect((await again.mesh.get('products', 'p1'))?.stock).toBe(98)
    expect(stock(again, 'p1')).toBe(98)
    expect((await again.mesh.get('products', 'p2'))?.name).toBe('milk')
  })
})

describe('seeding rows with counters', () => {
  it('seed a row as it was before its captured changes, so a sale made while seeding counts once', async () => {
    const a = await openNode(dirs.make('seed'), { ...seededProducts(), settings: { seedBatchSize: 1 }, start: false })
    nodes.push(a)
    let sold = 0
    // The app sells p2 while seeding is under way: after p1 went out (before p2 is read), and after p2 went out.
    a.registry.on('progress', (p) => {
      if (p.phase !== 'seed' || sold === 2) return
      sold++
      a.db.prepare("UPDATE products SET stock = stock - 1 WHERE id = 'p2'").run()
    })
    await a.registry.start()
    await a.sync.flush()
    expect(sold).toBe(2)
    expect((await a.mesh.get('products', 'p2'))?.stock).toBe(48)
    expect(stock(a, 'p2')).toBe(48)
  })
})

/** Products that exist before sync starts, so they are seeded: no batch of captured changes was acknowledged yet. */
function seededProducts() {
  const { adapter, definition } = products(true)
  return {
    ddl: `${PRODUCTS_DDL}; INSERT OR IGNORE INTO products (id, name, stock) VALUES ('p1', 'tea', 100), ('p2', 'milk', 50)`,
    adapters: [adapter],
    models: [definition],
    context: {},
  }
}

/**
 * From now on every repository transaction of `node` fails: a batch reaches the
 * mesh and its acknowledgement never commits, as when the process dies between
 * the two. `stop()` closes the node in that state.
 */
function crashBeforeAcknowledgement(node: TestNode) {
  const transaction = node.repo.transaction.bind(node.repo)
  let failures = 0
  node.repo.transaction = (async () => {
    failures++
    throw new Error('the process died here')
  }) as typeof transaction
  return {
    failures: () => failures,
    async stop() {
      // Stopped with the acknowledgement still failing: nothing of the batch reaches the repository.
      await node.registry.close()
      node.repo.transaction = transaction
      await node.close()
    },
  }
}
