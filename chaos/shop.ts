import { join } from 'node:path'

/**
 * The shop every till's app writes, in plain SQL as a point-of-sale app
 * would: customers and products (entered once, on the first till), orders of
 * a customer, order items of an order and a product. Foreign keys are
 * declared and enforced by the app; stock and loyalty points are counters.
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
`

/** The tables compared between tills, parents first. */
export const SHOP_TABLES = ['customers', 'products', 'orders', 'order_items'] as const

export const PRODUCTS = 12
export const CUSTOMERS = 20
export const INITIAL_STOCK = 1_000_000

export const productId = (i: number) => `p${String(i).padStart(2, '0')}`
export const customerId = (i: number) => `c${String(i).padStart(2, '0')}`

/** The `meshmirror peer` config of one till. */
export function peerConfig(dir: string, port: number, peers: readonly string[]): Record<string, unknown> {
  return {
    database: join(dir, 'till.db'),
    mesh: { dir: join(dir, 'mesh'), strategy: 'shared', onLocked: 'wait', lockTimeoutMs: 30_000 },
    meshId: 'chaos-shop',
    secret: 'chaos-shop-secret',
    listen: { host: '127.0.0.1', port },
    peers: [...peers],
    reconnect: { minMs: 50, maxMs: 1000 },
    tables: [
      { table: 'customers', counters: ['points'] },
      { table: 'products', counters: ['stock'] },
      { table: 'orders' },
      { table: 'order_items' },
    ],
    statusIntervalMs: 1000,
  }
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
  counts: {
    sales: number
    updates: number
    voids: number
    restocks: number
    notes: number
    longTransactions: number
    /** Writes refused with SQLITE_BUSY despite the busy timeout. */
    busy: number
    /** Any other failed write. */
    errors: number
  }
  /** The first few error messages. */
  errorSamples: string[]
}
