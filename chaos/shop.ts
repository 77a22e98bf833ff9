import { join } from 'node:path'

/**
 * The shop every till's app writes, in plain SQL as a point-of-sale app
 * would: customers and products (entered once, on the first till), orders of
 * a customer, order items of an order and a product. Foreign keys are
 * declared and enforced by the app; stock and loyalty points are counters.
 * Shifts (a till's shift and its sale count) are mirrored only once a till's
 * config gains the table, which the suite does during the run.
 */
export const SHOP_DDL = `
CREATE TABLE IF NOT EXISTS customers (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  note TEXT,
  points INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS products (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  price INTEGER NOT NULL,
  stock INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
  id TEXT PRIMARY KEY,
  till TEXT NOT NULL,
  customer_id TEXT NOT NULL REFERENCES customers (id),
  status TEXT NOT NULL,
  total INTEGER NOT NULL,
  points INTEGER NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS order_items (
  id TEXT PRIMARY KEY,
  order_id TEXT NOT NULL REFERENCES orders (id),
  product_id TEXT NOT NULL REFERENCES products (id),
  qty INTEGER NOT NULL,
  price INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS shifts (
  id TEXT PRIMARY KEY,
  till TEXT NOT NULL,
  opened_at TEXT NOT NULL,
  sales INTEGER NOT NULL
);
`

/** The tables compared between tills, parents first. */
export const SHOP_TABLES = ['customers', 'products', 'orders', 'order_items', 'shifts'] as const

export const PRODUCTS = 12
export const CUSTOMERS = 20
export const INITIAL_STOCK = 1_000_000

export const productId = (i: number) => `p${String(i).padStart(2, '0')}`
export const customerId = (i: number) => `c${String(i).padStart(2, '0')}`

/** What a till's config mirrors beyond the tables every till mirrors from the start. */
export interface ConfigShape {
  /** The `shifts` table is mirrored. */
  shifts: boolean
  /** `customers.note` stays local. */
  excludeNote: boolean
}

/** The `meshmirror peer` config of one till. */
export function peerConfig(
  dir: string,
  meshDir: string,
  port: number,
  peers: readonly string[],
  shape: ConfigShape,
): Record<string, unknown> {
  return {
    database: join(dir, 'till.db'),
    mesh: { dir: meshDir, strategy: 'shared', onLocked: 'wait', lockTimeoutMs: 30_000 },
    meshId: 'chaos-shop',
    secret: 'chaos-shop-secret',
    listen: { host: '127.0.0.1', port },
    peers: [...peers],
    reconnect: { minMs: 50, maxMs: 1000 },
    tables: [
      { table: 'customers', counters: ['points'], ...(shape.excludeNote ? { exclude: ['note'] } : {}) },
      { table: 'products', counters: ['stock'] },
      { table: 'orders' },
      { table: 'order_items' },
      ...(shape.shifts ? [{ table: 'shifts' }] : []),
    ],
    statusIntervalMs: 1000,
    // Every received document compared with the mesh each minute: a change read and not written is found.
    settings: { verifyIntervalMs: 60_000 },
  }
}

export interface SlowWrite {
  at: string
  what: string
  ms: number
  mono: number[]
}

/** A peer's hold of the write lock over a second, as its warning reports it (ms; `monotonicMs` when it ended). */
export interface LockHoldReport {
  monotonicMs: number
  heldMs: number
  cpuMs: number
  commitMs: number
  origin: string
  records?: number
}

/** A write the app gave up on with SQLITE_BUSY: what, and when on the monotonic clock (start and end, ms). */
export interface BusyWrite {
  what: string
  mono: number[]
}

/** What an app reports when it stops: everything it committed. */
export interface AppReport {
  till: string
  /** Orders created, by id, with their item ids. */
  orders: Record<string, string[]>
  /** Orders voided (deleted with their items) after being created. */
  voided: string[]
  /** Units added to stock, by product. */
  restocked: Record<string, number>
  /** Shifts opened. */
  shifts: string[]
  /** Every note written, by customer. */
  notes: Record<string, string[]>
  counts: {
    sales: number
    updates: number
    voids: number
    restocks: number
    notes: number
    longTransactions: number
    /** Write transactions held open for seconds. */
    veryLongTransactions: number
    shifts: number
    /** Writes that took more than a second (waiting for the write lock, or for the CPU). */
    slowWrites: number
    /** Writes refused with SQLITE_BUSY despite the busy timeout. */
    busy: number
    /** Any other failed write. */
    errors: number
  }
  /** The slowest writes over a second: when (the app's clock), what, how long, and the monotonic clock's ms at start and end. */
  slowWrites: SlowWrite[]
  /** The first few error messages. */
  errorSamples: string[]
  /** Every write refused with SQLITE_BUSY (the first 1,000). */
  busyWrites: BusyWrite[]
}
