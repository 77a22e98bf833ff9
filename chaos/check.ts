import Database from 'better-sqlite3'
import { digestTables } from '../src/demo/verify.js'
import { type AppReport, INITIAL_STOCK, SHOP_TABLES } from './shop.js'

/** One till's database, read at one moment. */
export interface TillSnapshot {
  name: string
  rows: Record<string, number>
  /** Digest of every row of every shop table, in key order. */
  fingerprint: string
  /** Captured writes not yet sent. */
  outbox: number
  parked: number
  refused: number
  orders: Map<string, { customer: string; points: number }>
  /** Item id → order id, product id, quantity. */
  items: Map<string, { order: string; product: string; qty: number }>
  stock: Map<string, number>
  points: Map<string, number>
  notes: Map<string, string | null>
  shifts: Set<string>
  /** Rows `PRAGMA foreign_key_check` reports. */
  foreignKeyViolations: number
}

/** Reads a till's database through a read-only connection, in one read transaction. */
export function snapshot(name: string, file: string): TillSnapshot {
  const db = new Database(file, { readonly: true, fileMustExist: true })
  try {
    db.pragma('busy_timeout = 5000')
    return db.transaction(() => {
      const { rows, fingerprint } = digestTables(db, SHOP_TABLES)
      const count = (sql: string) => {
        try {
          return db.prepare(sql).pluck().get() as number
        } catch {
          // meshmirror's tables are not there yet: nothing captured, nothing parked.
          return 0
        }
      }
      const orders = new Map(
        (db.prepare('SELECT id, customer_id, points FROM orders').raw().all() as [string, string, number][]).map(
          ([id, customer, points]) => [id, { customer, points }],
        ),
      )
      const items = new Map(
        (
          db.prepare('SELECT id, order_id, product_id, qty FROM order_items').raw().all() as [
            string,
            string,
            string,
            number,
          ][]
        ).map(([id, order, product, qty]) => [id, { order, product, qty }]),
      )
      const pairs = (sql: string) =>
        new Map((db.prepare(sql).raw().all() as [string, number][]).map(([k, v]) => [k, v]))
      return {
        name,
        rows,
        fingerprint,
        outbox: count('SELECT count(*) FROM _meshmirror_outbox'),
        parked: count("SELECT count(*) FROM _meshmirror_parked WHERE state = 'parked'"),
        refused: count("SELECT count(*) FROM _meshmirror_parked WHERE state = 'refused'"),
        orders,
        items,
        stock: pairs('SELECT id, stock FROM products'),
        points: pairs('SELECT id, points FROM customers'),
        notes: new Map(db.prepare('SELECT id, note FROM customers').raw().all() as [string, string | null][]),
        shifts: new Set(db.prepare('SELECT id FROM shifts').pluck().all() as string[]),
        foreignKeyViolations: (db.pragma('foreign_key_check') as unknown[]).length,
      }
    })()
  } finally {
    db.close()
  }
}

/** True when every till holds the same data and has nothing left to send or apply. */
export function agreed(tills: readonly TillSnapshot[]): boolean {
  return tills.every(
    (t) => t.fingerprint === tills[0]!.fingerprint && t.outbox === 0 && t.parked === 0 && t.refused === 0,
  )
}

/** The invariants of the end state: each failed one is a line saying what, where, and a few examples. */
export function violations(
  tills: readonly TillSnapshot[],
  reports: readonly AppReport[],
  /** Notes written besides the apps', by customer. */
  otherNotes: Record<string, string[]> = {},
): string[] {
  const out: string[] = []
  const fail = (what: string, examples: string[]) => {
    if (examples.length > 0) out.push(`${what} (${examples.length}): ${examples.slice(0, 5).join('; ')}`)
  }
  const prints = new Set(tills.map((t) => t.fingerprint))
  if (prints.size > 1) out.push(`databases differ: ${tills.map((t) => `${t.name} ${t.fingerprint}`).join(', ')}`)
  // What the apps committed: orders (with their items) not voided.
  const expectedOrders = new Map<string, string[]>()
  const voided = new Set<string>()
  const restocked = new Map<string, number>()
  const shifts = new Set<string>()
  const notes = new Map<string, Set<string>>()
  for (const r of [...reports, { orders: {}, voided: [], restocked: {}, shifts: [], notes: otherNotes }]) {
    for (const id of r.shifts) shifts.add(id)
    for (const [c, written] of Object.entries(r.notes)) {
      const set = notes.get(c) ?? new Set<string>()
      for (const n of written) set.add(n)
      notes.set(c, set)
    }
    for (const [id, items] of Object.entries(r.orders)) expectedOrders.set(id, items)
    for (const id of r.voided) voided.add(id)
    for (const [p, n] of Object.entries(r.restocked)) restocked.set(p, (restocked.get(p) ?? 0) + n)
  }
  for (const id of voided) expectedOrders.delete(id)
  const expectedItems = new Set([...expectedOrders.values()].flat())
  for (const t of tills) {
    fail(
      `${t.name}: orders committed by an app and missing`,
      [...expectedOrders.keys()].filter((id) => !t.orders.has(id)),
    )
    fail(
      `${t.name}: orders no app holds (voided, or never made)`,
      [...t.orders.keys()].filter((id) => !expectedOrders.has(id)),
    )
    fail(
      `${t.name}: order items committed and missing`,
      [...expectedItems].filter((id) => !t.items.has(id)),
    )
    fail(
      `${t.name}: order items of no live order`,
      [...t.items.keys()].filter((id) => !expectedItems.has(id)),
    )
    // Counters: stock is what was there, plus restocks, minus every unit on an order item this till holds.
    const sold = new Map<string, number>()
    for (const item of t.items.values()) sold.set(item.product, (sold.get(item.product) ?? 0) + item.qty)
    fail(
      `${t.name}: stock ≠ initial + restocked − sold`,
      [...t.stock].flatMap(([p, stock]) => {
        const expected = INITIAL_STOCK + (restocked.get(p) ?? 0) - (sold.get(p) ?? 0)
        return stock === expected ? [] : [`${p} holds ${stock}, expected ${expected} (off by ${stock - expected})`]
      }),
    )
    const earned = new Map<string, number>()
    for (const o of t.orders.values()) earned.set(o.customer, (earned.get(o.customer) ?? 0) + o.points)
    fail(
      `${t.name}: loyalty points ≠ the points of the customer's orders`,
      [...t.points].flatMap(([c, points]) => {
        const expected = earned.get(c) ?? 0
        return points === expected ? [] : [`${c} holds ${points}, expected ${expected} (off by ${points - expected})`]
      }),
    )
    fail(
      `${t.name}: shifts committed by an app and missing`,
      [...shifts].filter((id) => !t.shifts.has(id)),
    )
    fail(
      `${t.name}: shifts no app opened`,
      [...t.shifts].filter((id) => !shifts.has(id)),
    )
    // A note is one an app wrote for that customer; none only while no app wrote one.
    fail(
      `${t.name}: customer notes no app wrote for that customer`,
      [...t.notes].flatMap(([c, note]) => {
        const written = notes.get(c)
        if (note === null) return written ? [`${c} has none, ${written.size} were written`] : []
        return written?.has(note) ? [] : [`${c} holds "${note}"`]
      }),
    )
    if (t.foreignKeyViolations > 0) out.push(`${t.name}: ${t.foreignKeyViolations} rows break a foreign key`)
    if (t.outbox > 0) out.push(`${t.name}: ${t.outbox} captured writes never sent`)
    if (t.parked + t.refused > 0) out.push(`${t.name}: ${t.parked} documents parked and ${t.refused} refused`)
  }
  for (const r of reports) {
    if (r.counts.busy > 0) {
      out.push(`${r.till}: the app got SQLITE_BUSY ${r.counts.busy} times: ${r.errorSamples.join('; ')}`)
    }
    if (r.counts.errors > 0) out.push(`${r.till}: ${r.counts.errors} app writes failed: ${r.errorSamples.join('; ')}`)
  }
  return out
}
