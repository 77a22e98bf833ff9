import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, expect, it } from 'vitest'
import { openSqliteRepository } from './sqlite-repository.js'

const dir = mkdtempSync(join(tmpdir(), 'mm-unindexed-fk-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

it('names the foreign keys referencing mirrored tables that no index serves, from any table', async () => {
  const file = join(dir, 'shop.db')
  const db = new Database(file)
  db.exec(`
    CREATE TABLE orders (id TEXT PRIMARY KEY, till TEXT NOT NULL);
    CREATE TABLE items (id TEXT PRIMARY KEY, order_id TEXT REFERENCES orders (id));
    CREATE TABLE lines (id TEXT PRIMARY KEY, order_id TEXT REFERENCES orders (id), n INTEGER);
    CREATE INDEX lines_by_order ON lines (order_id, n);
    CREATE TABLE stock (sku TEXT, site TEXT, qty INTEGER, PRIMARY KEY (sku, site));
    CREATE TABLE moves (id TEXT PRIMARY KEY, sku TEXT, site TEXT, FOREIGN KEY (site, sku) REFERENCES stock (site, sku));
    CREATE INDEX moves_by_stock ON moves (sku, site, id);
    CREATE TABLE counts (id TEXT PRIMARY KEY, sku TEXT, site TEXT, FOREIGN KEY (sku, site) REFERENCES stock (sku, site));
    CREATE INDEX counts_sku ON counts (sku);
    CREATE TABLE receipts (order_rowid INTEGER PRIMARY KEY REFERENCES orders (id));
    CREATE TABLE audit (id TEXT PRIMARY KEY, order_id TEXT REFERENCES orders (id));
    CREATE TABLE notes (id TEXT PRIMARY KEY, audit_id TEXT REFERENCES audit (id));
  `)
  db.close()
  const repo = await openSqliteRepository({
    file,
    models: ['orders', 'items', 'lines', 'stock', 'moves', 'counts'].map((name) => ({ name })),
  })
  try {
    expect(repo.unindexedForeignKeys).toEqual([
      // `audit` is not mirrored, and its removals of orders still read it.
      { table: 'audit', columns: ['order_id'], parent: 'orders' },
      // An index on the first column of two does not serve both.
      { table: 'counts', columns: ['sku', 'site'], parent: 'stock' },
      { table: 'items', columns: ['order_id'], parent: 'orders' },
    ])
  } finally {
    await repo.close()
  }
})
