// An invoicing app on three devices (three `meshmirror peer` processes on
// configs written by `meshmirror init`): WITHOUT ROWID tables with unicode
// text keys, a composite key, BLOB attachments, every storage class
// (integers past 2^53, REAL 1.0, BLOBs), cascades, children before parents,
// and a column added later on one device. One mesh serves the whole file;
// each test ends on a full comparison of every mirrored table.
import Database from 'better-sqlite3'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tempDirs, waitFor } from '../bridge/helpers/wait.js'
import { type Dump, diffDumps, dumpDatabase } from './dump.js'
import { type Device, Mesh } from './peers.js'
import { EXACT_VALUES, INVOICING_DDL, INVOICING_TABLES, seedInvoicing, UNICODE_CLIENT_CODES } from './schemas.js'

const dirs = tempDirs()
let mesh: Mesh
let a: Device
let b: Device
let c: Device
let seeded: Dump

const one = (db: Database.Database, sql: string, ...args: unknown[]) =>
  db
    .prepare(sql)
    .pluck()
    .get(...args)
const has = (db: Database.Database, sql: string, ...args: unknown[]) => one(db, sql, ...args) !== undefined

/** A connection of the app on a device with foreign-key enforcement off, as an app that writes children first has. */
function looseConnection(device: Device): Database.Database {
  const db = new Database(device.dbFile)
  db.pragma('busy_timeout = 10000')
  db.pragma('foreign_keys = OFF')
  return db
}

beforeAll(async () => {
  const dir = dirs.make('invoicing')
  mesh = await Mesh.create(
    dir,
    ['a', 'b', 'c'],
    INVOICING_DDL,
    (db, name) => {
      if (name === 'a') seedInvoicing(db, 11)
    },
    { tables: INVOICING_TABLES, keys: 'global' },
  )
  a = mesh.get('a')
  b = mesh.get('b')
  c = mesh.get('c')
  seeded = dumpDatabase(a.db, INVOICING_TABLES)
  await mesh.startAll()
}, 60_000)

afterAll(async () => {
  await mesh?.close()
  dirs.cleanup()
})

describe('an invoicing app on three peers', () => {
  it('init proposes every table with a primary key and leaves out the log without one, with a reason', () => {
    expect(a.init.config.tables.map((t) => t.table).sort()).toEqual([...INVOICING_TABLES].sort())
    expect(a.init.skipped).toHaveLength(1)
    expect(a.init.skipped[0]!.table).toBe('audit_log')
    expect(a.init.skipped[0]!.reason).toMatch(/primary key/i)
  })

  it('seeds two empty copies with every value exact: storage classes, integers past 2^53, BLOBs, unicode keys', async () => {
    const final = await mesh.converged(
      'the seed on b and c',
      (d) => d.attachments!.length === seeded.attachments!.length && d.invoice_lines!.length > 0,
    )
    expect(diffDumps(seeded, final, ['seed', 'mirrored'])).toEqual([])
    for (const d of [b, c]) {
      // Storage classes as written on a, one by one.
      const values = d.db.prepare('SELECT k, typeof(v) AS t, quote(v) AS q FROM exact_values').all() as {
        k: string
        t: string
        q: string
      }[]
      expect(Object.fromEntries(values.map((v) => [v.k, v.t]))).toEqual(
        Object.fromEntries(EXACT_VALUES.map((e) => [e.k, e.typeof])),
      )
      expect(values.find((v) => v.k === 'int-2^53+1')!.q).toBe('9007199254740993')
      expect(values.find((v) => v.k === 'real-whole')!.q).toBe('1.0')
      expect(values.find((v) => v.k === 'text-numeric')!.q).toBe("'00123'")
      expect(one(d.db, 'SELECT quote(sequence_no) FROM invoices WHERE id = 1')).toBe('9007199254740994')
      // Composed and decomposed forms are two keys.
      for (const code of UNICODE_CLIENT_CODES) {
        expect(has(d.db, 'SELECT 1 FROM clients WHERE client_code = ?', code)).toBe(true)
      }
      expect(one(d.db, "SELECT typeof(content) FROM attachments WHERE id = 'att-4'")).toBe('blob')
      expect(one(d.db, "SELECT hex(content) FROM attachments WHERE id = 'att-4'")).toBe(
        one(a.db, "SELECT hex(content) FROM attachments WHERE id = 'att-4'"),
      )
      // The table without a primary key stays local.
      expect(one(d.db, 'SELECT count(*) FROM audit_log')).toBe(0)
    }
    expect(one(a.db, 'SELECT count(*) FROM audit_log')).toBe(20)
  }, 60_000)

  it('mirrors edits from all three: unicode keys, composite-key updates and deletes, BLOB and big-integer updates', async () => {
    const lastLine = one(b.db, 'SELECT max(line_no) FROM invoice_lines WHERE invoice_id = 3') as number
    // b: a client with a new unicode key and its invoice with lines, in one transaction.
    b.db.transaction(() => {
      b.db
        .prepare(
          "INSERT INTO clients VALUES ('🍕-pizzería-ß', 'Pizzería Groß', NULL, 1, 1200.5, '2024-06-01 08:00:00')",
        )
        .run()
      b.db
        .prepare(
          "INSERT INTO invoices VALUES (9001, 'INV-B-9001', '🍕-pizzería-ß', 'CHF', '2024-06-02', NULL, 0, 50, 1.0, 9223372036854775807)",
        )
        .run()
      b.db
        .prepare(
          "INSERT INTO invoice_lines VALUES (9001, 1, 'Margherita', 2, 12.5, 8.1), (9001, 2, 'Tiramisù', 1, 25, 8.1)",
        )
        .run()
    })()
    // c: a composite-key row updated, another deleted; both unicode forms of one name renamed differently.
    c.db
      .prepare("UPDATE invoice_lines SET quantity = 3.75, description = 'édité' WHERE invoice_id = 1 AND line_no = 1")
      .run()
    c.db.prepare('DELETE FROM invoice_lines WHERE invoice_id = 3 AND line_no = ?').run(lastLine)
    c.db.prepare("UPDATE clients SET name = 'decomposed' WHERE client_code = ?").run(UNICODE_CLIENT_CODES[1])
    a.db
      .prepare("UPDATE clients SET name = 'composed', is_company = 0 WHERE client_code = ?")
      .run(UNICODE_CLIENT_CODES[0])
    // a: exact values replaced by other storage classes; b: an attachment's bytes replaced.
    a.db.prepare("UPDATE exact_values SET v = ? WHERE k = 'int-small'").run(9007199254740995n)
    a.db.prepare("UPDATE exact_values SET v = 2.0 WHERE k = 'text'").run()
    a.db.prepare("UPDATE exact_values SET v = X'DEADBEEF00' WHERE k = 'null'").run()
    a.db.prepare("INSERT INTO exact_values VALUES ('added', -0.5, 'real')").run()
    b.db.prepare("UPDATE attachments SET content = X'255044462D312E370A00FF' WHERE id = 'att-8'").run()

    await mesh.converged(
      'edits of a, b and c everywhere',
      () =>
        has(a.db, "SELECT 1 FROM invoice_lines WHERE invoice_id = 9001 AND line_no = 2 AND description = 'Tiramisù'") &&
        has(c.db, 'SELECT 1 FROM invoices WHERE id = 9001') &&
        has(a.db, "SELECT 1 FROM invoice_lines WHERE invoice_id = 1 AND line_no = 1 AND description = 'édité'") &&
        !has(b.db, 'SELECT 1 FROM invoice_lines WHERE invoice_id = 3 AND line_no = ?', lastLine) &&
        one(b.db, 'SELECT name FROM clients WHERE client_code = ?', UNICODE_CLIENT_CODES[1]) === 'decomposed' &&
        one(c.db, 'SELECT name FROM clients WHERE client_code = ?', UNICODE_CLIENT_CODES[0]) === 'composed' &&
        one(c.db, "SELECT quote(v) FROM exact_values WHERE k = 'int-small'") === '9007199254740995' &&
        one(c.db, "SELECT quote(v) FROM exact_values WHERE k = 'null'") === "X'DEADBEEF00'" &&
        has(c.db, "SELECT 1 FROM exact_values WHERE k = 'added'") &&
        one(a.db, "SELECT hex(content) FROM attachments WHERE id = 'att-8'") === '255044462D312E370A00FF',
    )
    for (const d of [a, b, c]) {
      expect(one(d.db, "SELECT typeof(v) || ' ' || quote(v) FROM exact_values WHERE k = 'text'")).toBe('real 2.0')
      expect(one(d.db, 'SELECT quote(sequence_no) FROM invoices WHERE id = 9001')).toBe('9223372036854775807')
      expect(one(d.db, 'SELECT typeof(quantity) FROM invoice_lines WHERE invoice_id = 1 AND line_no = 1')).toBe('real')
      expect(one(d.db, 'SELECT typeof(total) FROM invoices WHERE id = 9001')).toBe('integer')
    }
  }, 60_000)

  it('cascades an invoice delete to its lines and attachments on all three, and nothing comes back', async () => {
    const invoice = 4
    expect(one(c.db, 'SELECT count(*) FROM attachments WHERE invoice_id = ?', invoice)).toBe(1)
    expect(one(c.db, 'SELECT count(*) FROM invoice_lines WHERE invoice_id = ?', invoice)).toBeGreaterThan(0)
    const before = [a, b, c].map((d) => d.errors().length)
    c.db.prepare('DELETE FROM invoices WHERE id = ?').run(invoice)
    await mesh.converged(
      'the cascade everywhere',
      () =>
        !has(a.db, 'SELECT 1 FROM invoices WHERE id = ?', invoice) &&
        !has(b.db, 'SELECT 1 FROM attachments WHERE invoice_id = ?', invoice) &&
        !has(b.db, 'SELECT 1 FROM invoice_lines WHERE invoice_id = ?', invoice),
    )
    a.db.prepare("UPDATE currencies SET name = 'Euro (after the cascade)' WHERE code = 'EUR'").run()
    await mesh.converged('a later change everywhere', () =>
      has(c.db, "SELECT 1 FROM currencies WHERE name = 'Euro (after the cascade)'"),
    )
    for (const d of [a, b, c]) {
      expect(one(d.db, 'SELECT count(*) FROM invoice_lines WHERE invoice_id = ?', invoice)).toBe(0)
      expect(one(d.db, 'SELECT count(*) FROM attachments WHERE invoice_id = ?', invoice)).toBe(0)
      expect(d.status()?.sync.errors).toBe(0)
    }
    expect([a, b, c].map((d, i) => d.errors().slice(before[i]))).toEqual([[], [], []])
  }, 60_000)

  it('parks lines and attachments written before their invoice on the two other devices, then applies them', async () => {
    const loose = looseConnection(c)
    try {
      loose.transaction(() => {
        loose
          .prepare("INSERT INTO invoice_lines VALUES (7001, 1, 'Kaffee', 2, 4.2, 2.5), (7001, 2, 'Crème', 1, 3, 2.5)")
          .run()
        loose
          .prepare("INSERT INTO attachments VALUES ('att-7001', 7001, 'reçu.pdf', 'application/pdf', X'255044460001')")
          .run()
      })()
    } finally {
      loose.close()
    }
    for (const d of [a, b]) {
      await mesh.statusCount(d, 'parked', (n) => n >= 3)
      const report = await mesh.parkedUntil(d, (r) => r.parked === 3)
      expect(report.entries.map((e) => `${e.state} ${e.collection} ${e.id}`).sort()).toEqual(
        [
          `parked attachments att-7001`,
          `parked invoice_lines ${JSON.stringify([7001, 1])}`,
          `parked invoice_lines ${JSON.stringify([7001, 2])}`,
        ].sort(),
      )
    }
    // The invoice's own parent (a new client) comes in a later transaction than the invoice.
    const loose2 = looseConnection(c)
    try {
      loose2
        .prepare(
          "INSERT INTO invoices VALUES (7001, 'INV-C-7001', 'Café Ωmega', 'EUR', '2024-07-01', NULL, 1, 11.4, NULL, NULL)",
        )
        .run()
    } finally {
      loose2.close()
    }
    c.db
      .prepare("INSERT INTO clients VALUES ('Café Ωmega', 'Café Ωmega SàRL', NULL, 1, NULL, '2024-07-01 07:00:00')")
      .run()
    await mesh.converged(
      'the parked rows applied on a and b',
      () =>
        has(a.db, "SELECT 1 FROM attachments WHERE id = 'att-7001'") &&
        has(b.db, "SELECT 1 FROM attachments WHERE id = 'att-7001'"),
    )
    for (const d of [a, b]) await mesh.statusCount(d, 'parked', (n) => n === 0)
  }, 90_000)

  it('survives a column added on one device: refused or ignored elsewhere with a reason, applied once the others have it', async () => {
    // c adds a column and restarts its peer, which then mirrors it.
    c.db.exec('ALTER TABLE clients ADD COLUMN loyalty_tier TEXT')
    await mesh.stop(c)
    await mesh.start(c)
    c.db.prepare("UPDATE clients SET loyalty_tier = 'gold', name = 'Renamed by c' WHERE client_code = 'C-00001'").run()
    c.db
      .prepare(
        "INSERT INTO clients VALUES ('C-99999', 'New with tier', NULL, 0, NULL, '2024-08-01 00:00:00', 'silver')",
      )
      .run()
    // On a and b: the row is applied without the field, or refused with a reason naming the column.
    for (const d of [a, b]) {
      await waitFor(
        async () => {
          if (has(d.db, "SELECT 1 FROM clients WHERE client_code = 'C-99999'")) return true
          const report = await d.parked()
          return report.entries.some(
            (e) => e.state === 'refused' && e.collection === 'clients' && e.reason.includes('loyalty_tier'),
          )
        },
        { timeout: 20_000, interval: 200, message: `${d.name} to apply or refuse the row with the new column` },
      )
      expect(d.proc?.child.exitCode).toBeNull()
    }
    // c's own values are not overwritten by anything coming back.
    expect(one(c.db, "SELECT loyalty_tier FROM clients WHERE client_code = 'C-00001'")).toBe('gold')

    // a and b add the column too and restart: every device ends with the same rows and values.
    for (const d of [a, b]) d.db.exec('ALTER TABLE clients ADD COLUMN loyalty_tier TEXT')
    await mesh.stop(b)
    await mesh.stop(a)
    await mesh.start(a)
    await mesh.start(b)
    await mesh.converged('the new column everywhere', () =>
      ['gold', 'silver'].every((tier) => has(b.db, 'SELECT 1 FROM clients WHERE loyalty_tier = ?', tier)),
    )
    expect(one(a.db, "SELECT name FROM clients WHERE client_code = 'C-00001'")).toBe('Renamed by c')
    for (const d of [a, b, c]) {
      await mesh.statusCount(d, 'refused', (n) => n === 0)
      expect(d.proc?.child.exitCode).toBeNull()
    }
  }, 90_000)
})
