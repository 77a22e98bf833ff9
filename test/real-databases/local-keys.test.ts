// Three tills (three `meshmirror peer` processes on configs written by
// `meshmirror init`) with the most common SQLite schema: INTEGER PRIMARY KEY
// tables with foreign keys between them. Every till creates invoices with
// lines while cut off from the others, so SQLite gives different invoices
// the same keys on different tills. After the tills meet again, every
// invoice is on every till with its own lines: compared by following the
// foreign keys, since each till holds the rows under keys of its own.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tempDirs, waitFor } from '../bridge/helpers/wait.js'
import { runCli } from '../cli/helpers.js'
import { type Device, Mesh } from './peers.js'

const TILL_DDL = `
CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE products (sku TEXT PRIMARY KEY, name TEXT NOT NULL, price INTEGER NOT NULL);
CREATE TABLE invoices (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  number TEXT NOT NULL UNIQUE,
  customer_id INTEGER REFERENCES customers (id),
  total INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE invoice_lines (
  id INTEGER PRIMARY KEY,
  invoice_id INTEGER NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
  sku TEXT NOT NULL REFERENCES products (sku),
  qty INTEGER NOT NULL
);
`
const TABLES = ['customers', 'products', 'invoices', 'invoice_lines']

const dirs = tempDirs()
let mesh: Mesh
let a: Device
let b: Device
let c: Device

beforeAll(async () => {
  mesh = await Mesh.create(
    dirs.make('tills'),
    ['a', 'b', 'c'],
    TILL_DDL,
    (db, name) => {
      // The catalogue is kept at the back office (till a): text keys, global.
      if (name === 'a') db.exec("INSERT INTO products VALUES ('tea', 'Tea', 3), ('cake', 'Cake', 4), ('jam', 'Jam', 5)")
    },
    { tables: TABLES },
  )
  a = mesh.get('a')
  b = mesh.get('b')
  c = mesh.get('c')
  await mesh.startAll()
}, 60_000)

afterAll(async () => {
  await mesh?.close()
  dirs.cleanup()
})

/** A sale as a till app writes it: keys left to SQLite, lines pointing at the invoice just inserted. */
function sell(db: Database.Database, number: string, lines: [string, number][], customer?: string): number {
  return db.transaction(() => {
    const customerId =
      customer === undefined
        ? null
        : db.prepare('INSERT INTO customers (name) VALUES (?)').run(customer).lastInsertRowid
    const id = db.prepare('INSERT INTO invoices (number, customer_id, total) VALUES (?, ?, ?)').run(
      number,
      customerId,
      lines.reduce((s, [, q]) => s + q, 0),
    ).lastInsertRowid
    for (const [sku, qty] of lines)
      db.prepare('INSERT INTO invoice_lines (invoice_id, sku, qty) VALUES (?, ?, ?)').run(id, sku, qty)
    return Number(id)
  })()
}

/** What a till holds, keys left out: each invoice by number, its customer and its lines, through the foreign keys. */
function logical(d: Device): string {
  const invoices = d.db
    .prepare(
      'SELECT i.id, i.number, i.total, c.name AS customer FROM invoices i LEFT JOIN customers c ON c.id = i.customer_id ORDER BY i.number',
    )
    .all() as { id: number; number: string; total: number; customer: string | null }[]
  return JSON.stringify({
    invoices: invoices.map((i) => [
      i.number,
      i.total,
      i.customer,
      d.db.prepare('SELECT sku, qty FROM invoice_lines WHERE invoice_id = ? ORDER BY sku, qty').raw().all(i.id),
    ]),
    customers: d.db.prepare('SELECT name FROM customers ORDER BY name').pluck().all(),
    lines: d.db.prepare('SELECT count(*) FROM invoice_lines').pluck().get(),
    products: d.db.prepare('SELECT * FROM products ORDER BY sku').raw().all(),
  })
}

async function sameEverywhere(devices: Device[], message: string, accept: (l: string) => boolean = () => true) {
  let last: string[] = []
  try {
    return await waitFor(
      () => {
        last = devices.map((d) => logical(d))
        return last.every((l) => l === last[0]) && accept(last[0]!) ? last[0] : undefined
      },
      { timeout: 30_000, interval: 100, message },
    )
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${last.map((l, i) => `${devices[i]!.name}: ${l}`).join('\n')}`)
  }
}

describe('integer keys created on three tills (keys "local")', () => {
  it('init chooses "local" for every integer-keyed table, says why, and leaves the text-keyed catalogue global', () => {
    expect(a.init.keys.map((k) => [k.table, k.keys])).toEqual([
      ['customers', 'local'],
      ['invoice_lines', 'local'],
      ['invoices', 'local'],
    ])
    for (const k of a.init.keys) expect(k.reason).toMatch(/each device/)
    expect(a.init.config.tables.find((t) => t.table === 'products')).not.toHaveProperty('keys')
  })

  it('keeps invoices created apart under the same keys apart, each with its own lines, through partitions and restarts', async () => {
    await sameEverywhere([a, b, c], 'the catalogue on every till', (l) => l.includes('"jam"'))
    // Together: one sale per till.
    sell(a.db, 'A-1', [['tea', 1]], 'Ada')
    sell(b.db, 'B-1', [['cake', 2]], 'Bea')
    sell(c.db, 'C-1', [['jam', 3]], 'Cy')
    await sameEverywhere([a, b, c], 'the first sales everywhere', (l) => l.includes('C-1') && l.includes('A-1'))

    // Cut off: b and c stop syncing, every till keeps selling (the same keys again on every till).
    await mesh.stop(b)
    await mesh.stop(c)
    sell(
      a.db,
      'A-2',
      [
        ['tea', 2],
        ['jam', 1],
      ],
      'Ann',
    )
    const b2 = sell(
      b.db,
      'B-2',
      [
        ['cake', 1],
        ['tea', 1],
      ],
      'Ben',
    )
    sell(b.db, 'B-3', [['jam', 4]])
    const c2 = sell(
      c.db,
      'C-2',
      [
        ['tea', 5],
        ['cake', 5],
        ['jam', 5],
      ],
      'Cat',
    )
    for (const d of [a, b, c])
      expect(d.db.prepare('SELECT max(id) FROM invoices').pluck().get()).toBeGreaterThanOrEqual(2)
    // On a, change and delete rows it received from the others (mapped keys).
    const b1 = a.db.prepare("SELECT id FROM invoices WHERE number = 'B-1'").pluck().get() as number
    a.db.prepare('UPDATE invoices SET total = 20 WHERE id = ?').run(b1)
    const c1 = a.db.prepare("SELECT id FROM invoices WHERE number = 'C-1'").pluck().get() as number
    a.db.prepare('DELETE FROM invoices WHERE id = ?').run(c1)

    // b comes back; a restarts while b catches up.
    await mesh.start(b)
    await mesh.stop(a)
    await mesh.start(a)
    await sameEverywhere([a, b], 'a and b to meet', (l) => l.includes('B-3') && l.includes('A-2') && !l.includes('C-1'))
    // c comes back last, with its offline sale and a stale view of C-1 (deleted on a meanwhile).
    await mesh.start(c)
    const final = await sameEverywhere(
      [a, b, c],
      'all three tills to meet',
      (l) => l.includes('C-2') && l.includes('B-3'),
    )
    const content = JSON.parse(final) as {
      invoices: [string, number, string | null, [string, number][]][]
      lines: number
    }
    expect(content.invoices.map((i) => i[0])).toEqual(['A-1', 'A-2', 'B-1', 'B-2', 'B-3', 'C-2'])
    expect(content.invoices.find((i) => i[0] === 'B-1')![1]).toBe(20)
    expect(content.invoices.find((i) => i[0] === 'C-2')).toEqual([
      'C-2',
      15,
      'Cat',
      [
        ['cake', 5],
        ['jam', 5],
        ['tea', 5],
      ],
    ])
    expect(content.lines).toBe(10)
    // Each till kept its own sales under the keys it gave them.
    expect(b.db.prepare("SELECT id FROM invoices WHERE number = 'B-2'").pluck().get()).toBe(b2)
    expect(c.db.prepare("SELECT id FROM invoices WHERE number = 'C-2'").pluck().get()).toBe(c2)
    // ...and the same numbers went to other sales on other tills, kept apart.
    expect(a.db.prepare('SELECT number FROM invoices WHERE id = ?').pluck().get(b2)).not.toBe('B-2')
    for (const d of [a, b, c]) {
      expect((await d.parked()).parked).toBe(0)
      expect((await d.parked()).refused).toBe(0)
    }
  }, 120_000)

  it('refuses a config that mirrors an integer-keyed table both ways without "keys", naming the key and the options', async () => {
    const config = JSON.parse(readFileSync(a.configFile, 'utf8')) as { tables: { table: string; keys?: string }[] }
    const i = config.tables.findIndex((t) => t.table === 'invoices')
    delete config.tables[i]!.keys
    const file = join(dirs.make('bad'), 'no-keys.config.json')
    writeFileSync(file, JSON.stringify({ ...config, database: a.dbFile, mesh: { dir: join(dirs.make('m'), 'mesh') } }))
    const r = await runCli(['peer', '--json', '--config', file])
    expect(r.code).toBe(1)
    const error = JSON.parse(r.stdout).error as { code: string; message: string; details: { key: string } }
    expect(error.code).toBe('INVALID_CONFIG')
    expect(error.details.key).toBe(`tables[${i}].keys`)
    expect(error.message).toMatch(/"local" if every device creates rows.*"global" if a key is the same row everywhere/s)
  })
})
