// One replica of the replication comparison, in its own process.
// `serve` loads N 8-field documents, listens on 127.0.0.1 and prints
// `{ ready, port }`; then it records the one-way latency of each ping document
// the other side writes (sender's clock in the document; same machine, same
// clock) and prints `{ latencies }` once it has M of them.
// `fetch` starts empty, connects, prints `{ caughtUp: ms }` once it holds all
// N documents (from the start of its open), then writes M pings 10 ms apart.
// Both run until SIGTERM.
// Usage: compare-peer.ts <builtin|builtin-plain|yjs> <serve|fetch> <dir> <n> <m> [url]
// BENCH_PING_RATE=R writes the M pings at R a second without waiting for each (a stream of commits, as
// `bench/coalesce-probe.ts` measures); BENCH_COALESCE_MS sets the builtin engine's `coalesceMs`. Each side
// prints `{ cpuMs }`, its process's CPU time from the first ping to the last one written or received.
// `builtin-plain` is the builtin engine with plain links (`insecure: true`), to tell what the default
// links' encryption costs; `builtin` is the default (TLS keyed by the mesh secret).
import { WebSocket, WebSocketServer } from 'ws'
import * as Y from 'yjs'
import { openReplicatedMesh } from '../src/replication/open-replicated-mesh.js'
import { syncOverSocket } from './compare-yjs-sync.js'
import { BATCH } from './ditto.bench.js'
import { eightFields } from './workload.js'

const [engine, role, dir, nArg, mArg, url] = process.argv.slice(2) as [string, string, string, string, string, string?]
const N = Number(nArg)
const M = Number(mArg)
// The monotonic clock, the same in every process of the machine (performance.timeOrigin is taken at each
// process start and can be off by milliseconds between two processes of a busy machine).
const now = () => Number(process.hrtime.bigint()) / 1e6
const print = (line: object) => process.stdout.write(`${JSON.stringify(line)}\n`)
const cpuMs = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1000
}

interface Replica {
  port?: number
  /** Puts documents into the `items` collection (map). */
  load(docs: ReturnType<typeof eightFields>[]): Promise<void> | void
  /** Resolves once the replica holds all N documents, persisted (builtin: the link went live, its last chunk committed and acknowledged). */
  holdsAll(): Promise<void>
  ping(id: string, sentAt: number): Promise<void> | void
  onPing(listener: (sentAt: number) => void): void
  close(): Promise<void>
}

const MESH = { meshId: 'bench-compare', secret: 'bench-compare-secret' }

async function builtinReplica(): Promise<Replica> {
  const mesh = await openReplicatedMesh({
    dir,
    ...MESH,
    ...(engine === 'builtin-plain' ? { insecure: true } : {}),
    ...(process.env.BENCH_COALESCE_MS ? { coalesceMs: Number(process.env.BENCH_COALESCE_MS) } : {}),
    ...(role === 'serve' ? { listen: { host: '127.0.0.1', port: 0 } } : { peers: [url!] }),
  })
  return {
    ...(mesh.replication.port === undefined ? {} : { port: mesh.replication.port }),
    load: async (docs) => {
      await mesh.upsert('items', docs)
    },
    // Counting 100,000 rows every few ms would compete with the catch-up for the CPU:
    // count when a link goes live (the peer's last chunk of the catch-up committed), then poll.
    holdsAll: async () => {
      await new Promise<void>((resolve) => {
        const off = mesh.replication.on('peer', (p) => {
          if (p.state !== 'live') return
          off()
          resolve()
        })
        if (mesh.replication.stats().livePeers > 0) {
          off()
          resolve()
        }
      })
      while ((await mesh.count({ collection: 'items' })) < N) await new Promise((r) => setTimeout(r, 5))
    },
    ping: async (id, sentAt) => {
      await mesh.upsert('pings', [{ _id: id, sentAt }])
    },
    onPing(listener) {
      mesh.observe({ collection: 'pings' }, (c) => {
        for (const d of c.inserted) listener(d.sentAt as number)
      })
    },
    close: () => mesh.close(),
  }
}

async function yjsReplica(): Promise<Replica> {
  const doc = new Y.Doc()
  const items = doc.getMap('items')
  const pings = doc.getMap<number>('pings')
  let close: () => Promise<void>
  let port: number | undefined
  if (role === 'serve') {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
    await new Promise<void>((r) => wss.once('listening', r))
    port = (wss.address() as { port: number }).port
    wss.on('connection', (ws) => syncOverSocket(doc, ws))
    close = () => new Promise((r) => wss.close(() => r()))
  } else {
    const ws = new WebSocket(url!)
    ws.once('open', () => syncOverSocket(doc, ws))
    close = async () => ws.close()
  }
  return {
    ...(port === undefined ? {} : { port }),
    load: (docs) =>
      doc.transact(() => {
        for (const d of docs) items.set(d._id, d)
      }),
    holdsAll: async () => {
      while (items.size < N) await new Promise((r) => setTimeout(r, 5))
    },
    ping: (id, sentAt) => {
      pings.set(id, sentAt)
    },
    onPing(listener) {
      pings.observe((e) => {
        for (const key of e.keysChanged) listener(pings.get(key)!)
      })
    },
    close,
  }
}

const t0 = performance.now()
const replica = engine === 'yjs' ? await yjsReplica() : await builtinReplica()
process.once('SIGTERM', () => {
  replica.close().then(
    () => process.exit(0),
    () => process.exit(1),
  )
})
if (role === 'serve') {
  for (let i = 0; i < N; i += BATCH) {
    const docs = []
    for (let j = i; j < Math.min(N, i + BATCH); j++) docs.push(eightFields(j))
    await replica.load(docs)
  }
  const latencies: number[] = []
  let cpuAtFirst = 0
  replica.onPing((sentAt) => {
    latencies.push(now() - sentAt)
    if (latencies.length === 1) cpuAtFirst = cpuMs()
    if (latencies.length === M) print({ latencies, cpuMs: cpuMs() - cpuAtFirst })
  })
  print({ ready: true, port: replica.port })
} else {
  await replica.holdsAll()
  print({ caughtUp: performance.now() - t0 })
  const rate = Number(process.env.BENCH_PING_RATE ?? 0)
  const cpuAtStart = cpuMs()
  if (rate > 0) {
    // Each write is started on time, whether the ones before have committed or not.
    const start = now()
    const writes: (Promise<void> | void)[] = []
    for (let i = 0; i < M; i++) {
      const wait = start + (i * 1000) / rate - now()
      if (wait >= 1) await new Promise((r) => setTimeout(r, wait))
      writes.push(replica.ping(`p${i}`, now()))
    }
    await Promise.all(writes)
  } else {
    for (let i = 0; i < M; i++) {
      await replica.ping(`p${i}`, now())
      await new Promise((r) => setTimeout(r, 10))
    }
  }
  print({ cpuMs: cpuMs() - cpuAtStart })
}
