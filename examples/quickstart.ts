// The builtin mesh store in a few lines. Run: npx tsx examples/quickstart.ts
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openMesh } from '../src/index.js'

const dir = mkdtempSync(join(tmpdir(), 'pos-mesh-'))
await using mesh = await openMesh({ dir })

// Batched upsert; fields a later upsert does not mention are kept.
await mesh.upsert('counters', [{ _id: 'c1', branchId: 1, curRcptNo: 7 }])
await mesh.upsert('counters', [{ _id: 'c1', invcNo: 3 }])

// Counters merge by summing every till's increments.
await mesh.upsert('stock', [{ _id: 'sku-9', qty: 10 }])
const qty = await mesh.increment('stock', 'sku-9', 'qty', -1)

// Mango-style queries, with an index on a hot field.
await mesh.createIndex('counters', 'branchId')
const mine = await mesh.find({ collection: 'counters', filter: { branchId: 1 }, orderBy: 'curRcptNo', limit: 50 })

// Live queries deliver diffs, in commit order.
const observer = mesh.observe({ collection: 'counters', filter: { branchId: 1 } }, (change) => {
  console.log('inserted', change.inserted.length, 'updated', change.updated.length, 'removed', change.removed.length)
})

// Catch up on what changed since a saved cursor (null: from the beginning).
const { changed, cursor } = await mesh.changesSince(null, { collection: 'counters' })

console.log({ qty, mine, changed: changed.length, cursor })
observer.cancel()
