import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, expect, it } from 'vitest'
import { openSqliteRepository, type SqliteRepository } from '../../src/index.js'
import type { RemoteBatch } from '../../src/repository/repository.js'

let dir: string | undefined
let repo: SqliteRepository | undefined

afterEach(async () => {
  await repo?.close()
  repo = undefined
  if (dir) rmSync(dir, { recursive: true, force: true })
})

const removal = (model: string, id: string): RemoteBatch => ({
  groups: [{ model, writes: [{ id, row: null, hash: '', doc: null }], hold: [] }],
  checkpoints: [],
})

it('tries a parked removal again after a delete went through, not after one that was parked again', async () => {
  dir = mkdtempSync(join(tmpdir(), 'mm-parked-removal-'))
  const file = join(dir, 'app.db')
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.exec(`
    CREATE TABLE orders (id TEXT PRIMARY KEY, total INTEGER NOT NULL);
    CREATE TABLE order_items (id TEXT PRIMARY KEY, order_id TEXT NOT NULL REFERENCES orders (id), qty INTEGER NOT NULL);
    INSERT INTO orders VALUES ('o1', 10), ('o2', 20);
    INSERT INTO order_items VALUES ('o1-0', 'o1', 1), ('o2-0', 'o2', 2);
  `)
  db.close()
  repo = await openSqliteRepository({ file, models: [{ name: 'orders' }, { name: 'order_items' }] })
  const apply = repo.applyRemoteBatch!.bind(repo)

  // The order's removal comes before its item's: it waits, parked.
  const first = await apply(removal('orders', 'o1'))
  expect(first.groups[0]!.outcomes).toEqual([4])
  expect([...first.unblocked]).toEqual([])
  // Tried again while the item is still there: parked again, and not handed back to be tried yet again.
  const again = await apply(removal('orders', 'o1'))
  expect(again.groups[0]!.outcomes).toEqual([4])
  expect([...again.unblocked]).toEqual([])
  // The item's removal goes through: now the order's removal is worth another try, and it lands.
  const item = await apply(removal('order_items', 'o1-0'))
  expect(item.unblocked.get('orders')).toEqual(['o1'])
  const last = await apply(removal('orders', 'o1'))
  expect(last.groups[0]!.outcomes).not.toContain(4)
  const check = new Database(file, { readonly: true })
  expect(check.prepare('SELECT id FROM orders ORDER BY id').pluck().all()).toEqual(['o2'])
  check.close()
})
