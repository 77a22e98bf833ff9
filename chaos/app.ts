/**
 * A till's point-of-sale app, in its own process: writes the shop's tables
 * continuously through its own connection, knowing nothing of meshmirror.
 * Sales (an order, one to three items, stock decrements and loyalty points
 * in one transaction), status updates, voids (the order and its items
 * deleted, stock and points given back), restocks, customer notes, and now
 * and then a long write transaction. On SIGTERM it finishes the write in
 * progress and prints everything it committed as one JSON line.
 *
 * Arguments: <database> <till> <seed> <writes per second> [catalogue]
 */
import Database from 'better-sqlite3'
import { mulberry32 } from './random.js'
import { type AppReport, CUSTOMERS, customerId, INITIAL_STOCK, PRODUCTS, productId, SHOP_DDL } from './shop.js'

const [file, till, seedArg, rateArg, role] = process.argv.slice(2)
if (!file || !till || !seedArg || !rateArg) {
  process.stderr.write('usage: app.ts <database> <till> <seed> <writes per second> [catalogue]\n')
  process.exit(2)
}
const random = mulberry32(Number(seedArg))
const pick = (n: number) => Math.floor(random() * n)
const intervalMs = 1000 / Number(rateArg)

const db = new Database(file)
db.pragma('journal_mode = WAL')
db.pragma('busy_timeout = 5000')
db.pragma('foreign_keys = ON')
db.exec(SHOP_DDL)

if (role === 'catalogue') {
  db.transaction(() => {
    const product = db.prepare('INSERT OR IGNORE INTO products (id, name, price, stock) VALUES (?, ?, ?, ?)')
    for (let i = 0; i < PRODUCTS; i++) product.run(productId(i), `product ${i}`, 100 + i * 10, INITIAL_STOCK)
    const customer = db.prepare('INSERT OR IGNORE INTO customers (id, name, note, points) VALUES (?, ?, NULL, 0)')
    for (let i = 0; i < CUSTOMERS; i++) customer.run(customerId(i), `customer ${i}`)
  })()
}

const report: AppReport = {
  till,
  orders: {},
  voided: [],
  restocked: {},
  shifts: [],
  notes: {},
  slowWrites: [],
  counts: {
    sales: 0,
    updates: 0,
    voids: 0,
    restocks: 0,
    notes: 0,
    longTransactions: 0,
    veryLongTransactions: 0,
    shifts: 0,
    slowWrites: 0,
    busy: 0,
    errors: 0,
  },
  errorSamples: [],
  busyWrites: [],
}
/** Orders of this till still there, to update or void. */
const open: string[] = []
let next = 1
let stopping = false

const q = {
  products: db.prepare('SELECT count(*) FROM products').pluck(),
  customers: db.prepare('SELECT count(*) FROM customers').pluck(),
  order: db.prepare(
    "INSERT INTO orders (id, till, customer_id, status, total, points, created_at) VALUES (?, ?, ?, 'open', ?, ?, ?)",
  ),
  item: db.prepare('INSERT INTO order_items (id, order_id, product_id, qty, price) VALUES (?, ?, ?, ?, ?)'),
  stock: db.prepare('UPDATE products SET stock = stock + ? WHERE id = ?'),
  points: db.prepare('UPDATE customers SET points = points + ? WHERE id = ?'),
  status: db.prepare('UPDATE orders SET status = ? WHERE id = ?'),
  note: db.prepare('UPDATE customers SET note = ? WHERE id = ?'),
  items: db.prepare('SELECT id, product_id, qty FROM order_items WHERE order_id = ?'),
  orderRow: db.prepare('SELECT customer_id, points FROM orders WHERE id = ?'),
  deleteItems: db.prepare('DELETE FROM order_items WHERE order_id = ?'),
  deleteOrder: db.prepare('DELETE FROM orders WHERE id = ?'),
  openShift: db.prepare('INSERT INTO shifts (id, till, opened_at, sales) VALUES (?, ?, ?, ?)'),
  shiftSales: db.prepare('UPDATE shifts SET sales = ? WHERE id = ?'),
}

/**
 * Runs `fn` in a BEGIN IMMEDIATE transaction (nested in one already open, a
 * savepoint): a deferred one that reads before it writes fails with
 * SQLITE_BUSY_SNAPSHOT, without waiting, when another connection wrote in
 * between, which is how SQLite works with any second writer.
 */
function immediate(fn: () => void): void {
  if (db.inTransaction) db.transaction(fn)()
  else db.transaction(fn).immediate()
}

function sale(): void {
  const id = `${till}-${next}`
  const customer = customerId(pick(CUSTOMERS))
  const lines = Array.from({ length: 1 + pick(3) }, () => ({ product: pick(PRODUCTS), qty: 1 + pick(3) }))
  const total = lines.reduce((s, l) => s + l.qty * (100 + l.product * 10), 0)
  const points = Math.floor(total / 100)
  const itemIds: string[] = []
  immediate(() => {
    q.order.run(id, till, customer, total, points, new Date().toISOString())
    lines.forEach((l, k) => {
      const itemId = `${id}-${k}`
      q.item.run(itemId, id, productId(l.product), l.qty, 100 + l.product * 10)
      q.stock.run(-l.qty, productId(l.product))
      itemIds.push(itemId)
    })
    q.points.run(points, customer)
  })
  next++
  report.orders[id] = itemIds
  open.push(id)
  report.counts.sales++
}

function update(): void {
  if (open.length === 0) {
    sale()
    return
  }
  const id = open[pick(open.length)]!
  q.status.run(random() < 0.5 ? 'paid' : 'served', id)
  report.counts.updates++
}

function voidOrder(): void {
  if (open.length === 0) {
    sale()
    return
  }
  const at = pick(open.length)
  const id = open[at]!
  immediate(() => {
    const order = q.orderRow.get(id) as { customer_id: string; points: number }
    for (const item of q.items.all(id) as { product_id: string; qty: number }[]) q.stock.run(item.qty, item.product_id)
    q.points.run(-order.points, order.customer_id)
    q.deleteItems.run(id)
    q.deleteOrder.run(id)
  })
  open.splice(at, 1)
  report.voided.push(id)
  report.counts.voids++
}

function restock(): void {
  const product = productId(pick(PRODUCTS))
  const units = 10 + pick(40)
  q.stock.run(units, product)
  report.restocked[product] = (report.restocked[product] ?? 0) + units
  report.counts.restocks++
}

function note(): void {
  const customer = customerId(pick(CUSTOMERS))
  const text = `${till} note ${next}`
  q.note.run(text, customer)
  const written = report.notes[customer] ?? []
  written.push(text)
  report.notes[customer] = written
  report.counts.notes++
}

let shift: string | undefined
let shiftNo = 0

/** Opens a shift now and then; otherwise records the till's sale count on the current one. */
function shiftWrite(): void {
  if (shift === undefined || random() < 0.2) {
    shift = `${till}-shift-${++shiftNo}`
    q.openShift.run(shift, till, new Date().toISOString(), report.counts.sales)
    report.shifts.push(shift)
  } else q.shiftSales.run(report.counts.sales, shift)
  report.counts.shifts++
}

/**
 * A sale in a write transaction held open for a while, as a slow app would:
 * 0.1 to 0.5 s, and one in twenty 2 to 6 s (a receipt printer timing out).
 */
async function longSale(): Promise<void> {
  const veryLong = random() < 0.05
  db.exec('BEGIN IMMEDIATE')
  try {
    sale()
    const hold = veryLong ? 2000 + pick(4000) : 100 + pick(400)
    held += hold
    await new Promise((r) => setTimeout(r, hold))
    db.exec('COMMIT')
  } catch (error) {
    if (db.inTransaction) db.exec('ROLLBACK')
    throw error
  }
  report.counts.longTransactions++
  if (veryLong) report.counts.veryLongTransactions++
}

/** What the app is doing, for the error samples. */
let doing = ''
/** How long the current write held its transaction open on purpose (ms). */
let held = 0

async function step(): Promise<void> {
  const r = random()
  const started = performance.now()
  held = 0
  try {
    if (r < 0.6) await act('sale', sale)
    else if (r < 0.78) await act('update', update)
    else if (r < 0.86) await act('void', voidOrder)
    else if (r < 0.9) await act('restock', restock)
    else if (r < 0.95) await act('note', note)
    else if (r < 0.97) await act('shift', shiftWrite)
    else await act('long sale', longSale)
    slow(performance.now() - started - held)
  } catch (error) {
    failed(error, performance.now() - started)
  }
}

/** The monotonic clock, in ms: the same in every process, and never faked. */
const mono = () => Number(process.hrtime.bigint() / 1_000_000n)

/** Keeps the slowest writes (waiting for the write lock, or for the CPU), with when they ran. */
function slow(ms: number): void {
  if (ms < 1000) return
  const end = mono()
  const w = { at: new Date().toISOString(), what: doing, ms: Math.round(ms), mono: [end - Math.round(ms), end] }
  process.stderr.write(`slow write: ${JSON.stringify(w)}\n`)
  report.slowWrites.push(w)
  report.slowWrites.sort((a, b) => b.ms - a.ms)
  report.slowWrites.length = Math.min(report.slowWrites.length, 20)
  report.counts.slowWrites++
}

async function act(what: string, fn: () => void | Promise<void>): Promise<void> {
  doing = what
  await fn()
}

function failed(error: unknown, afterMs: number): void {
  const code = (error as { code?: unknown }).code
  if (code === 'SQLITE_BUSY' || code === 'SQLITE_BUSY_SNAPSHOT') {
    report.counts.busy++
    const end = mono()
    if (report.busyWrites.length < 1000) report.busyWrites.push({ what: doing, mono: [end - Math.round(afterMs), end] })
  } else report.counts.errors++
  const sample = `${new Date().toISOString()} (monotonic ${mono()} ms) ${doing}, after ${Math.round(afterMs)} ms: ${String(code)}: ${String(error)}`
  process.stderr.write(`${sample}\n`)
  if (report.errorSamples.length < 5) report.errorSamples.push(sample)
}

async function main(): Promise<void> {
  // The catalogue is entered on one till; the others sell once it has reached them.
  while (!stopping && (q.products.get() !== PRODUCTS || q.customers.get() !== CUSTOMERS)) {
    await new Promise((r) => setTimeout(r, 100))
  }
  process.stdout.write(`${JSON.stringify({ event: 'selling' })}\n`)
  let due = performance.now()
  while (!stopping) {
    await step()
    due += intervalMs * (0.5 + random())
    const wait = due - performance.now()
    if (wait > 0) await new Promise((r) => setTimeout(r, wait))
    else due = performance.now()
  }
  db.close()
  process.stdout.write(`${JSON.stringify({ event: 'report', report })}\n`)
}

process.on('SIGTERM', () => {
  stopping = true
})
main().catch((error) => {
  process.stderr.write(`${String(error)}\n`)
  process.exit(1)
})
