// One till of the demo shop, in its own process: the shop app (plain SQL on
// its own database) with `meshmirror peer` running inside it.
// Argument: a JSON TillArgs. Reports JSON lines on stdout; takes commands on
// stdin: sell, stop, offline, online, exit.
import { createInterface } from 'node:readline'
import Database from 'better-sqlite3'
import { parseConfig } from '../config/load-config.js'
import { startPeer } from '../config/start-peer.js'
import { CATALOGUE, INITIAL_STOCK, SHOP_DDL, tillConfig } from './shop.js'

export interface TillArgs {
  name: string
  dir: string
  port: number
  peers: string[]
  /** Enter the catalogue (the first till's back office). */
  catalogue: boolean
  /** One sale every this many ms. */
  intervalMs: number
  /** The chain's NATS hub, when the shop syncs through one. */
  hub?: string
}

const args = JSON.parse(process.argv[2]!) as TillArgs
const say = (message: object) => process.stdout.write(`${JSON.stringify(message)}\n`)

const db = new Database(`${args.dir}/till.db`)
db.pragma('journal_mode = WAL')
db.pragma('busy_timeout = 10000')
db.exec(SHOP_DDL)
db.prepare('INSERT OR IGNORE INTO counters (id, cur_rcpt_no, updated_at) VALUES (?, 0, ?)').run(
  args.name,
  new Date().toISOString(),
)
if (args.catalogue) {
  const add = db.prepare('INSERT OR IGNORE INTO products (id, name, price, stock) VALUES (?, ?, ?, ?)')
  db.transaction(() => {
    for (const p of CATALOGUE) add.run(p.id, p.name, p.price, INITIAL_STOCK)
  })()
}

const config = parseConfig(tillConfig(args.dir, args.port, args.peers, args.hub), `${args.name} config`, args.dir)
const peer = await startPeer(config)
peer.on('error', (e) => say({ t: 'error', phase: e.phase, message: String((e.error as Error)?.message ?? e.error) }))
peer.on('rejected', (r) => say({ t: 'error', phase: 'rejected', message: `${r.model}/${r.id}: ${r.message}` }))
say({ t: 'ready', port: peer.port, siteId: peer.siteId })

const products = () => db.prepare('SELECT id, price FROM products ORDER BY id').all() as { id: string; price: number }[]
const haveCatalogue = () => products().length >= CATALOGUE.length
const catalogueWait = setInterval(() => {
  if (!haveCatalogue()) return
  clearInterval(catalogueWait)
  say({ t: 'catalogue' })
}, 20)

const nextReceipt = db.prepare(
  'UPDATE counters SET cur_rcpt_no = cur_rcpt_no + 1, updated_at = ? WHERE id = ? RETURNING cur_rcpt_no',
)
const insertOrder = db.prepare('INSERT INTO orders (id, till, receipt_no, total, created_at) VALUES (?, ?, ?, ?, ?)')
const insertItem = db.prepare('INSERT INTO order_items (id, order_id, product_id, qty, price) VALUES (?, ?, ?, ?, ?)')
const takeStock = db.prepare('UPDATE products SET stock = stock - ? WHERE id = ?')

/** Records one sale in one transaction: receipt number, order, its items, stock. */
const sell = db.transaction(() => {
  const now = new Date().toISOString()
  const { cur_rcpt_no: receipt } = nextReceipt.get(now, args.name) as { cur_rcpt_no: number }
  const id = `${args.name}-${String(receipt).padStart(6, '0')}`
  const catalogue = products()
  const lines = 1 + Math.floor(Math.random() * 3)
  const items: [string, number][] = []
  let total = 0
  for (let i = 0; i < lines; i++) {
    const p = catalogue[Math.floor(Math.random() * catalogue.length)]!
    const qty = 1 + Math.floor(Math.random() * 3)
    insertItem.run(`${id}-${i}`, id, p.id, qty, p.price)
    takeStock.run(qty, p.id)
    items.push([p.id, qty])
    total += qty * p.price
  }
  insertOrder.run(id, args.name, receipt, total, now)
  return { id, items }
})

let selling: NodeJS.Timeout | undefined
let sold = 0
const commands: Record<string, () => Promise<void> | void> = {
  sell: () => {
    selling ??= setInterval(() => {
      try {
        const sale = sell()
        sold++
        say({ t: 'sale', ...sale })
      } catch (error) {
        say({ t: 'error', phase: 'sale', message: String(error) })
      }
    }, args.intervalMs)
  },
  stop: () => {
    clearInterval(selling)
    selling = undefined
    say({ t: 'stopped', sold })
  },
  offline: async () => {
    await peer.setOnline(false)
    say({ t: 'offline' })
  },
  online: async () => {
    await peer.setOnline(true)
    say({ t: 'online' })
  },
  exit: async () => {
    clearInterval(selling)
    clearInterval(catalogueWait)
    await peer.close()
    db.close()
    say({ t: 'closed' })
    process.exit(0)
  },
}

// Commands run one after another, in the order they arrive.
let queue: Promise<void> = Promise.resolve()
createInterface({ input: process.stdin })
  .on('line', (line) => {
    const command = commands[line.trim()]
    if (!command) return
    queue = queue.then(command).catch((error) => {
      say({ t: 'error', phase: line, message: String(error) })
    })
  })
  // The demo went away: close cleanly.
  .on('close', () => {
    queue = queue.then(commands.exit)
  })
