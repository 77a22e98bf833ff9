// Integer keys allocated by every device (keys "local"): rows created on two
// devices under the same SQLite key stay two rows, their children follow them,
// and updates and deletes find the row on every device through the mapping.
import { afterEach, describe, expect, it } from 'vitest'
import type { ModelDefinition } from '../../src/index.js'
import { MeshLink } from './helpers/mesh-link.js'
import { openNode, type TestNode } from './helpers/node.js'
import { plainAdapter } from './helpers/plain-adapter.js'
import { tempDirs, waitFor } from './helpers/wait.js'

const dirs = tempDirs()
const open: TestNode[] = []

afterEach(async () => {
  for (const n of open.splice(0)) await n.close()
  dirs.cleanup()
})

const LOCAL_KEYS_DDL = `
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS products (id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS invoices (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  number TEXT NOT NULL,
  customer_id INTEGER REFERENCES customers (id),
  total INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS invoice_lines (
  id INTEGER PRIMARY KEY,
  invoice_id INTEGER NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
  sku TEXT NOT NULL REFERENCES products (id),
  qty INTEGER NOT NULL
);
`

const MODELS: ModelDefinition[] = [
  { name: 'customers', keys: 'local' },
  { name: 'products' },
  { name: 'invoices', keys: 'local' },
  { name: 'invoice_lines', keys: 'local' },
]

function device(dir: string): Promise<TestNode> {
  return openNode(dir, {
    ddl: LOCAL_KEYS_DDL,
    models: MODELS,
    adapters: MODELS.map((m) => plainAdapter(m.name)),
    countWrites: false,
  }) as Promise<TestNode>
}

/** Products keyed by text (keys "global"): the same catalogue on every till. */
function catalogue(n: TestNode): void {
  n.db.exec("INSERT OR IGNORE INTO products (id, name) VALUES ('tea', 'Tea'), ('cake', 'Cake')")
}

/** An invoice with lines, as an app writes it: keys left to SQLite. */
function sell(n: TestNode, number: string, lines: [string, number][], customer?: string): number {
  return n.db.transaction(() => {
    const customerId =
      customer === undefined
        ? null
        : Number(n.db.prepare('INSERT INTO customers (name) VALUES (?)').run(customer).lastInsertRowid)
    const id = Number(
      n.db.prepare('INSERT INTO invoices (number, customer_id, total) VALUES (?, ?, ?)').run(
        number,
        customerId,
        lines.reduce((s, [, q]) => s + q, 0),
      ).lastInsertRowid,
    )
    for (const [sku, qty] of lines) {
      n.db.prepare('INSERT INTO invoice_lines (invoice_id, sku, qty) VALUES (?, ?, ?)').run(id, sku, qty)
    }
    return id
  })()
}

/**
 * The logical content of a device, keys left out: every invoice by number
 * with its customer's name and its lines, found by following the foreign keys.
 */
function content(n: TestNode): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  const invoices = n.db
    .prepare(
      'SELECT i.id, i.number, i.total, c.name AS customer FROM invoices i LEFT JOIN customers c ON c.id = i.customer_id ORDER BY i.number',
    )
    .all() as { id: number; number: string; total: number; customer: string | null }[]
  for (const inv of invoices) {
    const lines = n.db
      .prepare('SELECT sku, qty FROM invoice_lines WHERE invoice_id = ? ORDER BY sku, qty')
      .all(inv.id) as { sku: string; qty: number }[]
    expect(out[inv.number], `invoice ${inv.number} appears twice`).toBeUndefined()
    out[inv.number] = { total: inv.total, customer: inv.customer, lines: lines.map((l) => `${l.qty}×${l.sku}`) }
  }
  return out
}

async function settle(nodes: TestNode[], expected?: Record<string, unknown>): Promise<void> {
  const link = new MeshLink(nodes.map((n) => n.mesh))
  await waitFor(
    async () => {
      for (const n of nodes) await n.sync.flush()
      await link.sync()
      for (const n of nodes) await n.sync.flush()
      const first = JSON.stringify(content(nodes[0]!))
      return (
        nodes.every((n) => JSON.stringify(content(n)) === first) &&
        (expected === undefined || first === JSON.stringify(expected))
      )
    },
    { timeout: 10_000, interval: 20, message: 'the devices to hold the same invoices' },
  )
}

describe('keys "local"', () => {
  it('keeps invoices two tills created under the same key apart, each with its own lines', async () => {
    const a = await device(dirs.make('a'))
    const b = await device(dirs.make('b'))
    open.push(a, b)
    for (const n of [a, b]) catalogue(n)
    // Apart: both tills get invoice id 1, line ids 1 and 2, customer id 1.
    expect(
      sell(
        a,
        'A-0001',
        [
          ['tea', 2],
          ['cake', 1],
        ],
        'Ada',
      ),
    ).toBe(1)
    expect(sell(b, 'B-0001', [['tea', 5]], 'Bob')).toBe(1)
    await settle([a, b], {
      'A-0001': { total: 3, customer: 'Ada', lines: ['1×cake', '2×tea'] },
      'B-0001': { total: 5, customer: 'Bob', lines: ['5×tea'] },
    })
    // Each database holds its own rows under the keys it gave them, the other's under new keys.
    expect(a.db.prepare("SELECT id FROM invoices WHERE number = 'A-0001'").pluck().get()).toBe(1)
    expect(b.db.prepare("SELECT id FROM invoices WHERE number = 'B-0001'").pluck().get()).toBe(1)
    expect(a.db.prepare("SELECT id FROM invoices WHERE number = 'B-0001'").pluck().get()).toBe(2)
    // The mesh names rows by their creating device.
    const docs = await a.mesh.find({ collection: 'invoices', orderBy: '_id' })
    expect(docs.map((d) => d._id).sort()).toEqual([`${a.repo.device}:1`, `${b.repo.device}:1`].sort())
    const lines = await a.mesh.find({ collection: 'invoice_lines' })
    for (const l of lines) expect(String(l.invoice_id)).toMatch(/^[a-z0-9]{10}:1$/)
    for (const n of [a, b]) expect(n.sync.metrics()).toMatchObject({ errors: 0, rejected: 0 })
  })

  it('updates and deletes a row received from another till on every till, and reuses no mapping for a new row', async () => {
    const a = await device(dirs.make('a'))
    const b = await device(dirs.make('b'))
    open.push(a, b)
    for (const n of [a, b]) catalogue(n)
    sell(a, 'A-0001', [['tea', 1]])
    sell(b, 'B-0001', [['cake', 2]])
    sell(b, 'B-0002', [['tea', 3]])
    await settle([a, b])
    // On A, B's invoices are rows 2 and 3: change one, delete the other (its line goes by cascade).
    const b1 = a.db.prepare("SELECT id FROM invoices WHERE number = 'B-0001'").pluck().get() as number
    const b2 = a.db.prepare("SELECT id FROM invoices WHERE number = 'B-0002'").pluck().get() as number
    a.db.prepare('UPDATE invoices SET total = 99 WHERE id = ?').run(b1)
    a.db.prepare('UPDATE invoice_lines SET qty = 7 WHERE invoice_id = ?').run(b1)
    a.db.prepare('DELETE FROM invoices WHERE id = ?').run(b2)
    await settle([a, b], {
      'A-0001': { total: 1, customer: null, lines: ['1×tea'] },
      'B-0001': { total: 99, customer: null, lines: ['7×cake'] },
    })
    // B changed its own rows in place: same keys.
    expect(b.db.prepare("SELECT id, total FROM invoices WHERE number = 'B-0001'").get()).toEqual({ id: 1, total: 99 })
    expect(b.db.prepare('SELECT count(*) FROM invoice_lines').pluck().get()).toBe(2)
    // A new invoice on A after the delete gets a fresh key and a fresh identity: nothing of B-0002 comes back.
    sell(a, 'A-0002', [['cake', 4]])
    await settle([a, b], {
      'A-0001': { total: 1, customer: null, lines: ['1×tea'] },
      'A-0002': { total: 4, customer: null, lines: ['4×cake'] },
      'B-0001': { total: 99, customer: null, lines: ['7×cake'] },
    })
  })

  it('seeds rows that existed before mirroring started, and survives restarts in between', async () => {
    const pa = dirs.make('a')
    const pb = dirs.make('b')
    let a = await device(pa)
    let b = await device(pb)
    for (const n of [a, b]) catalogue(n)
    sell(a, 'A-0001', [['tea', 1]], 'Ada')
    sell(b, 'B-0001', [['tea', 2]], 'Bob')
    await a.close()
    await b.close()
    // Rows written while sync is off, then a restart: seeded or drained under the same scheme.
    const { default: Database } = await import('better-sqlite3')
    for (const [dir, number] of [
      [pa, 'A-0002'],
      [pb, 'B-0002'],
    ] as const) {
      const db = new Database(`${dir}/app.db`)
      db.pragma('foreign_keys = ON')
      const id = db.prepare('INSERT INTO invoices (number, total) VALUES (?, 1)').run(number).lastInsertRowid
      db.prepare("INSERT INTO invoice_lines (invoice_id, sku, qty) VALUES (?, 'cake', 1)").run(id)
      db.close()
    }
    a = await device(pa)
    b = await device(pb)
    open.push(a, b)
    await settle([a, b])
    expect(Object.keys(content(a))).toEqual(['A-0001', 'A-0002', 'B-0001', 'B-0002'])
    await b.close()
    open.splice(open.indexOf(b), 1)
    b = await device(pb)
    open.push(b)
    sell(b, 'B-0003', [['tea', 9]])
    await settle([a, b])
    expect(Object.keys(content(a))).toEqual(['A-0001', 'A-0002', 'B-0001', 'B-0002', 'B-0003'])
  })

  it('parks lines that arrive before their invoice and applies them when it lands', async () => {
    const a = await device(dirs.make('a'))
    const b = await device(dirs.make('b'))
    open.push(a, b)
    for (const n of [a, b]) catalogue(n)
    sell(a, 'A-0001', [
      ['tea', 1],
      ['cake', 2],
    ])
    await a.sync.flush()
    // Only the lines reach B first: copy A's line documents without their invoice.
    const lines = await a.mesh.find({ collection: 'invoice_lines' })
    await b.mesh.transaction(async (tx) => {
      for (const l of lines) await tx.upsert('invoice_lines', [l])
    })
    await waitFor(async () => (await b.repo.parkedCounts()).parked === 2, { message: 'lines parked on B' })
    expect(b.db.prepare('SELECT count(*) FROM invoice_lines').pluck().get()).toBe(0)
    await settle([a, b], { 'A-0001': { total: 3, customer: null, lines: ['2×cake', '1×tea'] } })
    expect((await b.repo.parkedCounts()).parked).toBe(0)
  })

  it('reads a row as it was at an outbox entry in its mesh form, references to local keys included', async () => {
    const a = (await openNode(dirs.make('a'), {
      ddl: LOCAL_KEYS_DDL,
      models: MODELS,
      adapters: MODELS.map((m) => plainAdapter(m.name)),
      countWrites: false,
      start: false,
    })) as TestNode
    open.push(a)
    for (const m of MODELS) await a.repo.setChangeCapture(m.name, true)
    catalogue(a)
    sell(a, 'A-1', [['tea', 2]], 'Ann')
    const captured = await a.repo.pendingChanges({ models: ['invoices'], limit: 10 })
    const { id, seq } = captured.at(-1)!
    const then = await a.repo.getMany('invoices', [id])
    expect(String(then.get(id)?.customer_id)).toContain(':')
    a.db.prepare('UPDATE invoices SET total = 99').run()
    const asOf = await a.repo.rowsAt!('invoices', [id], seq)
    expect(asOf).toEqual(then)
    expect((await a.repo.getMany('invoices', [id])).get(id)?.total).toBe(99)
  })

  it('refuses a document of a "local" table whose id is not <device>:<key>, with its reason', async () => {
    const a = await device(dirs.make('a'))
    open.push(a)
    await a.mesh.transaction(async (tx) => tx.upsert('customers', [{ _id: '17', name: 'Old style id' }]))
    await waitFor(async () => (await a.repo.parkedCounts()).refused === 1, { message: 'the document refused' })
    const [entry] = await a.repo.parked({ limit: 10 })
    expect(entry).toMatchObject({ model: 'customers', id: '17', state: 'refused' })
    expect(entry!.reason).toMatch(/not a row id of a table with keys "local"/)
    expect(a.db.prepare('SELECT count(*) FROM customers').pluck().get()).toBe(0)
  })
})
