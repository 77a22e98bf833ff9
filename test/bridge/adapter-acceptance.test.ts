import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll } from 'vitest'
import { openSqliteRepository } from '../../src/index.js'
import { runAdapterAcceptance } from '../../src/testing.js'
import { COUNTERS_DDL, counter, counterAdapter, counterModel } from './helpers/counter-model.js'
import { plainAdapter } from './helpers/plain-adapter.js'

const dirs: string[] = []
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

async function repository(ddl: string, models: Parameters<typeof openSqliteRepository>[0]['models']) {
  const dir = mkdtempSync(join(tmpdir(), 'mm-acceptance-'))
  dirs.push(dir)
  const file = join(dir, 'app.db')
  const db = new Database(file)
  db.exec(ddl)
  db.close()
  return openSqliteRepository({ file, models })
}

const sample = counter(7, { bhf_id: null, last_touched: null })
const doc = counterAdapter.toDocument(sample)

runAdapterAcceptance("the seed's counter adapter", () => ({
  adapter: counterAdapter,
  records: [counter(1), counter(2, { branch_id: 1, receipt_type: 'TS' }), sample],
  context: { branchId: 1 },
  malformed: [
    { _id: 'm1' },
    { ...doc, _id: 'm2', branchId: 'one' },
    { ...doc, _id: 'm3', totRcptNo: 1.5 },
    { ...doc, _id: 'm4', createdAt: null },
  ],
  outOfScope: [{ ...doc, _id: 'o1', branchId: 2 }],
  aliases: [
    {
      doc: {
        _id: sample.id,
        branch_id: 1,
        business_id: 10,
        receipt_type: 'NS',
        tot_rcpt_no: 7,
        cur_rcpt_no: 7,
        invc_no: 7,
        created_at: sample.created_at,
      },
      record: sample,
    },
  ],
  repository: () => repository(COUNTERS_DDL, [counterModel]),
}))

runAdapterAcceptance('a plain adapter over booleans and JSON columns', () => ({
  adapter: plainAdapter('products'),
  records: [
    { id: 'p1', name: 'Tea', active: true, tags: ['hot', 'green'], price: 2.5 },
    { id: 'p2', name: 'Milk', active: false, tags: { fridge: true }, price: 1 },
  ],
  repository: () =>
    repository('CREATE TABLE products (id TEXT PRIMARY KEY, name TEXT, active BOOLEAN, tags JSON, price REAL)', [
      { name: 'products' },
    ]),
}))
