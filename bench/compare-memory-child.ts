// Loads N documents into one engine in a fresh process and prints JSON lines:
// `{ loaded, rssMB }` after each batch, then `{ done: true, rssMB, heapMB, loadMs }`
// after garbage collection (run with --expose-gc).
// Usage: compare-memory-child.ts <builtin|yjs|automerge|empty> <n> <dir>
import { eightFields } from './workload.js'

const [engine, nArg, dir] = process.argv.slice(2) as [string, string, string]
const N = Number(nArg)
const BATCH = 5000
const gc = (globalThis as { gc?: () => void }).gc

/** Takes one batch of documents into the engine. */
type Sink = { put(docs: ReturnType<typeof eightFields>[]): Promise<void> | void; close?(): Promise<void> }

async function open(): Promise<Sink> {
  if (engine === 'builtin') {
    const { openBuiltinStore } = await import('../src/engine/open-builtin-store.js')
    const mesh = await openBuiltinStore({ dir })
    return {
      put: async (docs) => {
        await mesh.upsert('items', docs)
      },
      close: () => mesh.close(),
    }
  }
  if (engine === 'yjs') {
    const Y = await import('yjs')
    const doc = new Y.Doc()
    const items = doc.getMap<Record<string, unknown>>('items')
    return {
      put: (docs) =>
        doc.transact(() => {
          for (const d of docs) items.set(d._id, d)
        }),
    }
  }
  if (engine === 'automerge') {
    const A = await import('@automerge/automerge')
    let doc = A.from<{ items: Record<string, Record<string, unknown>> }>({ items: {} })
    return {
      put: (docs) => {
        doc = A.change(doc, (d) => {
          for (const x of docs) d.items[x._id] = { ...x }
        })
      },
    }
  }
  if (engine === 'empty') return { put: () => {} }
  throw new Error(`unknown engine ${engine}`)
}

const rss = () => process.memoryUsage().rss / 2 ** 20
const sink = await open()
const t0 = performance.now()
for (let i = 0; i < N; i += BATCH) {
  const docs = []
  for (let j = i; j < Math.min(N, i + BATCH); j++) docs.push(eightFields(j))
  await sink.put(docs)
  process.stdout.write(`${JSON.stringify({ loaded: Math.min(N, i + BATCH), rssMB: rss() })}\n`)
}
const loadMs = performance.now() - t0
for (let k = 0; k < 3; k++) gc?.()
const heapMB = process.memoryUsage().heapUsed / 2 ** 20
process.stdout.write(`${JSON.stringify({ done: true, loaded: N, rssMB: rss(), heapMB, loadMs })}\n`)
await sink.close?.()
