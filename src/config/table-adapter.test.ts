import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll } from 'vitest'
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
  { table: 'customers', scope: { branch_id: 1 }, counters: ['balance'], exclude: ['notes'] },
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
