// Loads N documents into a fresh store, then reports resident memory and
// selective find latency, as one JSON line. Run in its own process so memory
// figures are not polluted by the parent.
import Database from 'better-sqlite3'
import { openBuiltinStore } from '../src/engine/open-builtin-store.js'

const [dir, nArg, mode] = process.argv.slice(2) as [string, string, string]
const N = Number(nArg)
const BATCH = 5000
const gc = (globalThis as { gc?: () => void }).gc

function doc(j: number) {
  return {
    _id: `d${j}`,
    sku: `sku-${j % (N / 50)}`,
    n: j,
    name: `item ${j}`,
    ok: j % 3 === 0,
    price: j * 0.01,
    tag: 'shop',
    note: null,
  }
}

if (mode === 'empty') {
  const mesh = await openBuiltinStore({ dir })
  gc?.()
  process.stdout.write(`${JSON.stringify({ rssMB: process.memoryUsage().rss / 2 ** 20 })}\n`)
  await mesh.close()
} else if (mode === 'mesh') {
  const mesh = await openBuiltinStore({ dir })
  for (let i = 0; i < N; i += BATCH) {
    const docs = []
    for (let j = i; j < Math.min(N, i + BATCH); j++) docs.push(doc(j))
    await mesh.upsert('items', docs)
  }
  gc?.()
  const rssMB = process.memoryUsage().rss / 2 ** 20
  await mesh.createIndex('items', 'sku')
  const lat: number[] = []
  for (let k = 0; k < 300; k++) {
    const t = performance.now()
    const found = await mesh.find({ collection: 'items', filter: { sku: `sku-${(k * 7919) % (N / 50)}` } })
    lat.push(performance.now() - t)
    if (found.length !== 50) throw new Error(`expected 50 matches, got ${found.length}`)
  }
  process.stdout.write(`${JSON.stringify({ rssMB, findMs: lat })}\n`)
  await mesh.close()
} else {
  const db = new Database(`${dir}/plain.sqlite`)
  db.pragma('journal_mode = WAL')
  db.pragma('synchronous = NORMAL')
  db.exec('CREATE TABLE t (id TEXT PRIMARY KEY, doc TEXT NOT NULL)')
  const ins = db.prepare('INSERT INTO t (id, doc) VALUES (?, ?)')
  const load = db.transaction((docs: { _id: string }[]) => {
    for (const d of docs) ins.run(d._id, JSON.stringify(d))
  })
  for (let i = 0; i < N; i += BATCH) {
    const docs = []
    for (let j = i; j < Math.min(N, i + BATCH); j++) docs.push(doc(j))
    load(docs)
  }
  db.exec(`CREATE INDEX t_sku ON t (json_extract(doc, '$.sku'))`)
  const q = db.prepare(`SELECT doc FROM t WHERE json_extract(doc, '$.sku') = ? ORDER BY id`)
  const lat: number[] = []
  for (let k = 0; k < 300; k++) {
    const t = performance.now()
    const found = q.all(`sku-${(k * 7919) % (N / 50)}`).map((r) => JSON.parse((r as { doc: string }).doc))
    lat.push(performance.now() - t)
    if (found.length !== 50) throw new Error(`expected 50 matches, got ${found.length}`)
  }
  process.stdout.write(`${JSON.stringify({ findMs: lat })}\n`)
  db.close()
}
