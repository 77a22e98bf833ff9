import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, describe, expect, it } from 'vitest'
import { runAdapterAcceptance } from '../bridge/adapter-acceptance.js'
import type { Document } from '../mesh/document.js'
import { openSqliteRepository } from '../repository/sqlite-repository.js'
import { mapTable } from './table-adapter.js'
import { readDatabaseSchema } from './table-schema.js'

const dir = mkdtempSync(join(tmpdir(), 'mm-table-adapter-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

// An app's own table, made by plain SQL: integer key, nullable and defaulted columns, a boolean (kept as
// stored: 0/1), JSON.
const file = join(dir, 'app.db')
const db = new Database(file)
db.exec(`CREATE TABLE customers (
  id INTEGER PRIMARY KEY, branch_id INTEGER NOT NULL, name TEXT NOT NULL, email TEXT,
  balance REAL NOT NULL DEFAULT 0, vip BOOLEAN NOT NULL DEFAULT 0, tags JSON, notes TEXT, loose
)`)
db.close()

const mapped = mapTable(
  { table: 'customers', keys: 'global', scope: { branch_id: 1 }, counters: ['balance'], exclude: ['notes'] },
  0,
  readDatabaseSchema(file, 'test'),
  'test',
)

runAdapterAcceptance('a table mapping', () => ({
  adapter: mapped.adapter,
  records: [
    { id: 7, branch_id: 1, name: 'Ann', email: 'ann@x', balance: 12.5, vip: 1, tags: ['a', 'b'], loose: 'x' },
    { id: 8, branch_id: 1, name: 'Bob', email: null, balance: 0, vip: 0, tags: null, loose: 3 },
  ],
  malformed: [
    { _id: 'seven', branch_id: 1, name: 'Ann' },
    { _id: '9', branch_id: 1, name: 42 },
    { _id: '9', branch_id: 1 },
    { _id: '9', branch_id: 1, name: 'Cy', balance: 'lots' },
    { _id: '9', branch_id: 1, name: 'Cy', loose: { nested: true } },
  ] as Document[],
  outOfScope: [{ _id: '9', branch_id: 2, name: 'Cy' }],
  repository: () => openSqliteRepository({ file, models: [mapped.definition] }),
}))

describe('key modes of a table mapping', () => {
  const keysFile = join(dir, 'keys.db')
  const k = new Database(keysFile)
  k.exec(`CREATE TABLE invoices (id INTEGER PRIMARY KEY, number TEXT NOT NULL);
    CREATE TABLE lines (id INTEGER PRIMARY KEY, invoice_id INTEGER NOT NULL REFERENCES invoices (id), qty INTEGER NOT NULL);
    CREATE TABLE products (sku TEXT PRIMARY KEY, name TEXT)`)
  k.close()
  const schema = readDatabaseSchema(keysFile, 'test')

  it('requires a choice for an integer key mirrored both ways, and only then', () => {
    expect(() => mapTable({ table: 'invoices' }, 3, schema, 'test')).toThrow(
      /tables\[3\]\.keys: table invoices has an integer primary key \(id\) and is mirrored both ways/,
    )
    expect(() => mapTable({ table: 'invoices', direction: 'sendOnly' }, 0, schema, 'test')).not.toThrow()
    expect(() => mapTable({ table: 'products' }, 0, schema, 'test')).not.toThrow()
  })

  it('refuses keys "local" on a key that is not one integer column', () => {
    expect(() => mapTable({ table: 'products', keys: 'local' }, 1, schema, 'test')).toThrow(
      /tables\[1\]\.keys: table products's key is sku, not a single INTEGER column/,
    )
  })

  it('reads document ids in the key and in foreign keys to a "local" table', () => {
    const local = new Set(['invoices', 'lines'])
    const invoices = mapTable({ table: 'invoices', keys: 'local' }, 0, schema, 'test', local)
    const lines = mapTable({ table: 'lines', keys: 'local' }, 1, schema, 'test', local)
    expect(invoices.definition.keys).toBe('local')
    expect(invoices.adapter.fromDocument({ _id: 'k3f9a2qz0m:5', number: 'A-1' })).toEqual({
      id: 'k3f9a2qz0m:5',
      number: 'A-1',
    })
    expect(lines.adapter.fromDocument({ _id: 'k3f9a2qz0m:9', invoice_id: 'k3f9a2qz0m:5', qty: 2 })).toEqual({
      id: 'k3f9a2qz0m:9',
      invoice_id: 'k3f9a2qz0m:5',
      qty: 2,
    })
  })
})
