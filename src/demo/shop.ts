import { join } from 'node:path'
import type { MeshmirrorConfig } from '../config/config-schema.js'

/**
 * The demo shop's database, as a point-of-sale app would create it: plain
 * SQL, nothing meshmirror-specific.
 */
export const SHOP_DDL = `
CREATE TABLE IF NOT EXISTS products (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL,
  price INTEGER NOT NULL,
  stock INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
  id TEXT PRIMARY KEY,
  till TEXT NOT NULL,
  receipt_no INTEGER NOT NULL,
  total INTEGER NOT NULL,
  created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS order_items (
  id TEXT PRIMARY KEY,
  order_id TEXT NOT NULL,
  product_id TEXT NOT NULL,
  qty INTEGER NOT NULL,
  price INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (
  id TEXT PRIMARY KEY,
  cur_rcpt_no INTEGER NOT NULL,
  updated_at TEXT NOT NULL
);
`

/** The tables the demo compares, with their keys. */
export const SHOP_TABLES = ['products', 'orders', 'order_items', 'counters'] as const

export const INITIAL_STOCK = 100_000

/** The catalogue the first till's back office enters before the shop opens. */
export const CATALOGUE: readonly { id: string; name: string; price: number }[] = [
  { id: 'p-coffee', name: 'Coffee', price: 250 },
  { id: 'p-tea', name: 'Tea', price: 200 },
  { id: 'p-croissant', name: 'Croissant', price: 180 },
  { id: 'p-bagel', name: 'Bagel', price: 220 },
  { id: 'p-juice', name: 'Orange juice', price: 300 },
  { id: 'p-water', name: 'Water', price: 100 },
  { id: 'p-muffin', name: 'Muffin', price: 240 },
  { id: 'p-sandwich', name: 'Sandwich', price: 450 },
]

/**
 * The meshmirror config of one till: the shop's four tables, stock as a
 * counter; with `hub`, it also syncs through the chain's NATS hub.
 */
export function tillConfig(dir: string, port: number, peers: readonly string[], hub?: string): MeshmirrorConfig {
  return {
    database: join(dir, 'till.db'),
    mesh: { dir: join(dir, 'mesh'), strategy: 'shared', onLocked: 'wait', lockTimeoutMs: 10_000 },
    meshId: 'demo-shop',
    secret: 'demo-shop-secret',
    listen: { host: '127.0.0.1', port },
    peers: [...peers],
    reconnect: { minMs: 50, maxMs: 500 },
    tables: [
      { table: 'products', counters: ['stock'] },
      { table: 'orders' },
      { table: 'order_items' },
      { table: 'counters' },
    ],
    statusIntervalMs: 500,
    ...(hub ? { hub: { servers: hub, prefix: 'demo-chain' } } : {}),
  }
}
