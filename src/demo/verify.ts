import { createHash } from 'node:crypto'
import Database from 'better-sqlite3'
import { CATALOGUE, INITIAL_STOCK, SHOP_TABLES } from './shop.js'

/** One till's data, read through a read-only connection. */
export interface TillData {
  name: string
  /** Rows per table. */
  rows: Record<string, number>
  /** Digest of every row of every compared table, in key order. */
  fingerprint: string
  orderIds: Set<string>
  stock: Map<string, number>
  /** Units sold per product, from the order items this till holds. */
  sold: Map<string, number>
  /** Order items whose order this till does not hold. */
  orphanItems: number
}

/**
 * Rows per table and a digest of every row of `tables`, in key order: two
 * databases with the same digest hold the same rows. Run it inside a read
 * transaction for one moment's view.
 */
export function digestTables(
  db: Database.Database,
  tables: readonly string[],
): { rows: Record<string, number>; fingerprint: string } {
  const hash = createHash('sha256')
  const rows: Record<string, number> = {}
  for (const table of tables) {
    const all = db.prepare(`SELECT * FROM ${table} ORDER BY id`).all()
    rows[table] = all.length
    hash.update(`${table}:${JSON.stringify(all)}\n`)
  }
  return { rows, fingerprint: hash.digest('hex').slice(0, 16) }
}

export function readTill(name: string, file: string): TillData {
  const db = new Database(file, { readonly: true, fileMustExist: true })
  try {
    db.pragma('busy_timeout = 5000')
    return db.transaction(() => {
      const { rows, fingerprint } = digestTables(db, SHOP_TABLES)
      const orderIds = new Set(db.prepare('SELECT id FROM orders').pluck().all() as string[])
      const stock = new Map(
        (db.prepare('SELECT id, stock FROM products').all() as { id: string; stock: number }[]).map((r) => [
          r.id,
          r.stock,
        ]),
      )
      const sold = new Map(
        (
          db.prepare('SELECT product_id AS id, sum(qty) AS n FROM order_items GROUP BY product_id').all() as {
            id: string
            n: number
          }[]
        ).map((r) => [r.id, r.n]),
      )
      const orphanItems = db
        .prepare('SELECT count(*) FROM order_items WHERE order_id NOT IN (SELECT id FROM orders)')
        .pluck()
        .get() as number
      return { name, rows, fingerprint, orderIds, stock, sold, orphanItems }
    })()
  } finally {
    db.close()
  }
}

/** The demo's verdict on the tills' databases. */
export interface Checks {
  /** Every till holds exactly the same rows in every table. */
  identical: boolean
  /** On every till, each product's stock is the initial stock minus the units sold on all tills. */
  stockConsistent: boolean
  /** Every order a till reported creating is in every till's database. */
  nothingLost: boolean
  /** No till holds an order item without its order (no half-replicated sale). */
  ordersComplete: boolean
}

export interface Verification {
  checks: Checks
  lost: { order: string; missingOn: string[] }[]
  stockMismatches: { till: string; product: string; expected: number; actual: number | undefined }[]
  /** Order items without their order, summed over the tills. */
  incompleteOrders: number
}

/** Checks the tills' data against each other and against what each till reported selling. */
export function verify(tills: readonly TillData[], reported: ReadonlySet<string>): Verification {
  const identical = tills.every((t) => t.fingerprint === tills[0]!.fingerprint)
  const lost: Verification['lost'] = []
  for (const order of reported) {
    const missingOn = tills.filter((t) => !t.orderIds.has(order)).map((t) => t.name)
    if (missingOn.length > 0) lost.push({ order, missingOn })
  }
  const stockMismatches: Verification['stockMismatches'] = []
  let incompleteOrders = 0
  for (const t of tills) {
    for (const p of CATALOGUE) {
      const expected = INITIAL_STOCK - (t.sold.get(p.id) ?? 0)
      const actual = t.stock.get(p.id)
      if (actual !== expected) stockMismatches.push({ till: t.name, product: p.id, expected, actual })
    }
    incompleteOrders += t.orphanItems
  }
  return {
    checks: {
      identical,
      stockConsistent: stockMismatches.length === 0,
      nothingLost: lost.length === 0,
      ordersComplete: incompleteOrders === 0,
    },
    lost: lost.slice(0, 20),
    stockMismatches: stockMismatches.slice(0, 20),
    incompleteOrders,
  }
}
