// A till on SQLite and the head office on Postgres, each a `meshmirror peer`
// process on a config `meshmirror init` wrote, over one shop schema with
// foreign keys. The head office's data is changed the way people change it:
// with psql, in their own sessions. Waits are for states, never fixed times.
import { execFileSync } from 'node:child_process'
import { randomUUID } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import Database from 'better-sqlite3'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { tempDirs, waitFor } from '../bridge/helpers/wait.js'
import { type CliProcess, runCli, startCli } from '../cli/helpers.js'
import { createDatabase, requireServer, type TestDatabase } from './server.js'

const TILL_DDL = `
CREATE TABLE products (sku TEXT PRIMARY KEY, name TEXT NOT NULL, price TEXT NOT NULL, active BOOLEAN NOT NULL DEFAULT 1);
CREATE TABLE sales (id TEXT PRIMARY KEY, till TEXT NOT NULL, sold_at TEXT NOT NULL, total TEXT NOT NULL);
CREATE TABLE sale_items (
  sale_id TEXT NOT NULL REFERENCES sales (id) ON DELETE CASCADE,
  line INTEGER NOT NULL,
  sku TEXT NOT NULL REFERENCES products (sku),
  qty INTEGER NOT NULL,
  price TEXT NOT NULL,
  PRIMARY KEY (sale_id, line)
);
CREATE TABLE counters (id TEXT PRIMARY KEY, sold INTEGER NOT NULL DEFAULT 0);
`

const HEAD_OFFICE_DDL = `
CREATE TABLE products (sku text PRIMARY KEY, name text NOT NULL, price numeric(10,2) NOT NULL, active boolean NOT NULL DEFAULT true);
CREATE TABLE sales (id uuid PRIMARY KEY, till text NOT NULL, sold_at timestamptz NOT NULL, total numeric(12,2) NOT NULL);
CREATE TABLE sale_items (
  sale_id uuid NOT NULL REFERENCES sales (id) ON DELETE CASCADE,
  line integer NOT NULL,
  sku text NOT NULL REFERENCES products (sku),
  qty integer NOT NULL,
  price numeric(10,2) NOT NULL,
  PRIMARY KEY (sale_id, line)
);
CREATE TABLE counters (id text PRIMARY KEY, sold bigint NOT NULL DEFAULT 0);
INSERT INTO products VALUES ('sku-1', 'Coffee', 3.50, true), ('sku-2', 'Tea', 1.20, true), ('sku-3', 'Scone', 2.10, true);
INSERT INTO counters VALUES ('c1', 0);
`

/** The parts of a status event these tests read. */
interface Status {
  sync?: { busyRetries?: number }
  repository?: { kind: string; listening: boolean; pool: { size: number }; outbox: { depth: number } }
}

const problem = await requireServer()

describe.skipIf(problem !== undefined)(
  `a till on SQLite and the head office on Postgres${problem ? ` (skipped: ${problem})` : ''}`,
  () => {
    const dirs = tempDirs()
    let db: TestDatabase
    let till: Database.Database
    let tillConfig: string
    let hoConfig: string
    let hoPort = 0
    const procs: { till?: CliProcess; ho?: CliProcess } = {}
    const all: CliProcess[] = []

    /** Runs SQL through psql, as a person at the head office would. */
    const psql = (sql: string) =>
      execFileSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d', db.url, '-c', sql], { encoding: 'utf8' })
    const pgRow = async (sql: string, params: unknown[] = []) => (await db.admin.query(sql, params)).rows[0]
    /** The number of rows of a head-office table (`from`: the table, and any condition on `params`). */
    const pgCount = async (from: string, params: unknown[] = []) =>
      Number((await pgRow(`SELECT count(*) AS n FROM ${from}`, params)).n)
    /** Rings up a sale on till-1: the sale and its lines (sku, qty, price) in one transaction. */
    const tillSale = (id: string, soldAt: string, total: string, lines: [string, number, string][]) =>
      till.transaction(() => {
        till.prepare('INSERT INTO sales VALUES (?, ?, ?, ?)').run(id, 'till-1', soldAt, total)
        const line = till.prepare('INSERT INTO sale_items VALUES (?, ?, ?, ?, ?)')
        for (const [i, [sku, qty, price]] of lines.entries()) line.run(id, i + 1, sku, qty, price)
      })()

    const start = async (which: 'till' | 'ho') => {
      const proc = startCli(['peer', '--json', '--config', which === 'till' ? tillConfig : hoConfig])
      procs[which] = proc
      all.push(proc)
      const live = await proc.event('live').catch((e: Error) => {
        throw new Error(`${which} did not go live: ${e.message.slice(0, 3000)}\n${proc.stderr().slice(-2000)}`)
      })
      if (which === 'ho' && hoPort === 0) {
        hoPort = live.port as number
        const c = JSON.parse(readFileSync(hoConfig, 'utf8'))
        c.listen = { host: '127.0.0.1', port: hoPort }
        writeFileSync(hoConfig, JSON.stringify(c, null, 2))
        const t = JSON.parse(readFileSync(tillConfig, 'utf8'))
        t.peers = [`ws://127.0.0.1:${hoPort}`]
        writeFileSync(tillConfig, JSON.stringify(t, null, 2))
      }
    }
    const stop = async (which: 'till' | 'ho') => {
      const proc = procs[which]!
      proc.child.kill('SIGTERM')
      expect(await proc.exited).toBe(0)
      procs[which] = undefined
    }
    const lastStatus = (proc: CliProcess | undefined) => {
      const lines = proc?.lines ?? []
      for (let i = lines.length - 1; i >= 0; i--) {
        if (lines[i]!.includes('"event":"status"')) return JSON.parse(lines[i]!) as Status
      }
      return undefined
    }

    beforeAll(async () => {
      db = await createDatabase()
      await db.admin.query(HEAD_OFFICE_DDL)
      const dir = dirs.make('mm-head-office-')
      const tillFile = join(dir, 'till.db')
      till = new Database(tillFile)
      till.pragma('journal_mode = WAL')
      till.pragma('foreign_keys = ON')
      till.exec(TILL_DDL)
      tillConfig = join(dir, 'till.config.json')
      hoConfig = join(dir, 'head-office.config.json')
      for (const [database, out] of [
        [db.url, hoConfig],
        [tillFile, tillConfig],
      ] as const) {
        const r = await runCli(['init', '--database', database, '--out', out, '--json', '--port', '0'])
        if (r.code !== 0) throw new Error(`init ${database}: ${r.stdout} ${r.stderr}`)
      }
      const ho = JSON.parse(readFileSync(hoConfig, 'utf8'))
      const t = JSON.parse(readFileSync(tillConfig, 'utf8'))
      for (const c of [ho, t]) {
        for (const table of c.tables) if (table.table === 'counters') table.counters = ['sold']
        c.statusIntervalMs = 100
        c.reconnect = { minMs: 50, maxMs: 500 }
      }
      t.meshId = ho.meshId
      t.secret = ho.secret
      ho.listen = { host: '127.0.0.1', port: 0 }
      delete t.listen
      writeFileSync(hoConfig, JSON.stringify(ho, null, 2))
      writeFileSync(tillConfig, JSON.stringify(t, null, 2))
      await start('ho')
      await start('till')
    }, 120_000)

    afterAll(async () => {
      for (const p of all) if (p.child.exitCode === null) p.child.kill('SIGKILL')
      await Promise.all(all.map((p) => p.exited))
      till?.close()
      await db?.drop()
      dirs.cleanup()
    }, 60_000)

    it('init reads the Postgres catalog: every table with its key, the URL kept as written', () => {
      const config = JSON.parse(readFileSync(hoConfig, 'utf8'))
      expect(config.database).toBe(db.url)
      const tables = Object.fromEntries(config.tables.map((t: { table: string; id: unknown }) => [t.table, t.id]))
      expect(tables).toEqual({
        counters: 'id',
        products: 'sku',
        sale_items: ['sale_id', 'line'],
        sales: 'id',
      })
    })

    it('the head office catalogue reaches the till, exact prices and booleans included', async () => {
      await waitFor(() => (till.prepare('SELECT count(*) AS n FROM products').get() as { n: number }).n === 3, {
        timeout: 30_000,
        message: 'products on the till',
      })
      expect(till.prepare("SELECT * FROM products WHERE sku = 'sku-1'").get()).toEqual({
        sku: 'sku-1',
        name: 'Coffee',
        price: '3.50',
        active: 1,
      })
    })

    it('a sale on the till appears in Postgres with its lines, typed (uuid, timestamptz, numeric)', async () => {
      const id = randomUUID()
      const soldAt = '2026-12-07T09:15:30.250Z'
      tillSale(id, soldAt, '8.20', [
        ['sku-1', 2, '3.50'],
        ['sku-2', 1, '1.20'],
      ])
      await waitFor(async () => (await pgCount('sale_items')) === 2, {
        timeout: 30_000,
        message: 'the sale in Postgres',
      })
      const sale = await pgRow(
        `SELECT id::text, till, to_char(sold_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS') AS at, total::text FROM sales`,
      )
      expect(sale).toEqual({ id, till: 'till-1', at: '2026-12-07T09:15:30.250', total: '8.20' })
      const lines = (await db.admin.query('SELECT line, sku, qty, price::text FROM sale_items ORDER BY line')).rows
      expect(lines).toEqual([
        { line: 1, sku: 'sku-1', qty: 2, price: '3.50' },
        { line: 2, sku: 'sku-2', qty: 1, price: '1.20' },
      ])
    })

    it('a price changed with psql appears on the till', async () => {
      psql("UPDATE products SET price = 3.75 WHERE sku = 'sku-1'")
      await waitFor(
        () =>
          (till.prepare("SELECT price FROM products WHERE sku = 'sku-1'").get() as { price: string }).price === '3.75',
        { timeout: 30_000, message: 'the new price on the till' },
      )
    })

    it('deletes go both ways: a sale voided on the till, a product withdrawn at the head office', async () => {
      const sale = (till.prepare('SELECT id FROM sales').get() as { id: string }).id
      // ON DELETE CASCADE removes its lines on the till; both removals travel.
      till.prepare('DELETE FROM sales WHERE id = ?').run(sale)
      await waitFor(async () => (await pgCount('sales')) === 0, {
        timeout: 30_000,
        message: 'the sale gone from Postgres',
      })
      expect(await pgCount('sale_items')).toBe(0)
      psql("DELETE FROM products WHERE sku = 'sku-3'")
      await waitFor(() => till.prepare("SELECT 1 FROM products WHERE sku = 'sku-3'").get() === undefined, {
        timeout: 30_000,
        message: 'the product gone from the till',
      })
    })

    it('counters add up: increments on both sides at once are all kept', async () => {
      till.prepare("UPDATE counters SET sold = sold + 2 WHERE id = 'c1'").run()
      psql("UPDATE counters SET sold = sold + 5 WHERE id = 'c1'")
      till.prepare("UPDATE counters SET sold = sold + 1 WHERE id = 'c1'").run()
      await waitFor(
        async () =>
          Number((await pgRow("SELECT sold FROM counters WHERE id = 'c1'")).sold) === 8 &&
          (till.prepare("SELECT sold FROM counters WHERE id = 'c1'").get() as { sold: number }).sold === 8,
        { timeout: 30_000, message: 'the counter at 8 on both sides' },
      )
    })

    it('a till restarted after changes made while it was down catches up, and sends what it did offline', async () => {
      await stop('till')
      psql("UPDATE products SET price = 1.35, name = 'Green tea' WHERE sku = 'sku-2'")
      const id = randomUUID()
      tillSale(id, '2026-12-07T10:00:00.000Z', '1.35', [['sku-2', 1, '1.35']])
      await start('till')
      await waitFor(
        async () =>
          (till.prepare("SELECT name FROM products WHERE sku = 'sku-2'").get() as { name: string }).name ===
            'Green tea' && (await pgCount('sale_items WHERE sale_id = $1', [id])) === 1,
        { timeout: 30_000, message: 'both ways after the till restarted' },
      )
    })

    it('a head office restarted after changes made while it was down catches up, and sends what psql did meanwhile', async () => {
      await stop('ho')
      psql("INSERT INTO products VALUES ('sku-4', 'Muffin', 2.95, false)")
      const id = randomUUID()
      tillSale(id, '2026-12-07T11:00:00.000Z', '3.75', [['sku-1', 1, '3.75']])
      await start('ho')
      await waitFor(
        async () =>
          till.prepare("SELECT active FROM products WHERE sku = 'sku-4'").get() !== undefined &&
          (await pgCount('sales WHERE id = $1', [id])) === 1,
        { timeout: 30_000, message: 'both ways after the head office restarted' },
      )
      expect(till.prepare("SELECT price, active FROM products WHERE sku = 'sku-4'").get()).toEqual({
        price: '2.95',
        active: 0,
      })
      const status = await waitFor(() => lastStatus(procs.ho)?.repository, { message: 'the repository in the status' })
      expect(status.kind).toBe('postgres')
      expect(status.listening).toBe(true)
      expect(status.pool.size).toBeGreaterThan(0)
      expect(typeof status.outbox.depth).toBe('number')
      // `meshmirror status` shows it from outside, without the password-free URL changing.
      const meshDir = resolve(dirname(hoConfig), JSON.parse(readFileSync(hoConfig, 'utf8')).mesh.dir)
      const text = await runCli(['status', '--dir', meshDir])
      expect(text.stdout).toMatch(/repository postgres: pool \d+\/\d+ connections .*outbox \d+.*listening/)
      expect(text.stdout).toContain(`database   ${db.url}`)
    })

    it('under a competing long transaction, the app commits without an error and the mirror waits its turn', async () => {
      const app = new pg.Client({ connectionString: db.url })
      await app.connect()
      try {
        const retriesBefore = Number(lastStatus(procs.ho)?.sync?.busyRetries ?? 0)
        await app.query('BEGIN')
        await app.query("UPDATE products SET name = 'Tea (held)' WHERE sku = 'sku-2'")
        // The till changes both rows in one transaction: the head office's apply locks sku-1, then waits for sku-2.
        till.transaction(() => {
          till.prepare("UPDATE products SET price = '3.90' WHERE sku = 'sku-1'").run()
          till.prepare("UPDATE products SET price = '1.40' WHERE sku = 'sku-2'").run()
        })()
        await waitFor(() => Number(lastStatus(procs.ho)?.sync?.busyRetries ?? 0) > retriesBefore, {
          timeout: 30_000,
          message: 'the head office apply to wait for the app',
        })
        // The app now wants the row the apply may hold: the apply steps back, the app never sees an error.
        await app.query("UPDATE products SET name = 'Coffee (held)' WHERE sku = 'sku-1'")
        await app.query('COMMIT')
      } finally {
        await app.end()
      }
      await waitFor(
        async () => {
          const rows = (
            await db.admin.query(
              "SELECT sku, name, price::text FROM products WHERE sku IN ('sku-1', 'sku-2') ORDER BY sku",
            )
          ).rows
          const tillRows = till
            .prepare("SELECT sku, name, price FROM products WHERE sku IN ('sku-1', 'sku-2') ORDER BY sku")
            .all()
          return (
            JSON.stringify(rows) === JSON.stringify(tillRows) &&
            JSON.stringify(rows) ===
              JSON.stringify([
                { sku: 'sku-1', name: 'Coffee (held)', price: '3.90' },
                { sku: 'sku-2', name: 'Tea (held)', price: '1.40' },
              ])
          )
        },
        { timeout: 30_000, message: 'both sides with the app’s names and the till’s prices' },
      )
    })

    it('no peer reported an error', () => {
      const errors = all.flatMap((p) => p.lines.filter((l) => l.includes('"event":"error"')))
      expect(errors).toEqual([])
    })
  },
)
