// The hub tier against the peer-to-peer WebSocket mesh, in one run on one
// machine. Tills are mesh stores (each its own SQLite store and its own link:
// a NATS connection, or WebSocket peer links) in this process; the hub is a
// nats-server with JetStream on loopback that the suite starts.

import { type DemoHub, startDemoHub } from '../src/demo/hub-server.js'
import { openBuiltinStore } from '../src/engine/open-builtin-store.js'
import type { BuiltinMesh } from '../src/engine/types.js'
import { ErrorCode, hasCode } from '../src/errors.js'
import { type HubLink, startHubLink } from '../src/hub/hub-link.js'
import { openMesh, type ReplicatedMesh } from '../src/index.js'
import { type BenchContext, type BenchResult, type BenchSuite, percentile, summarise, withBaseline } from './harness.js'

const SUITE = 'hub'
const MESH = { meshId: 'bench-hub', secret: 'bench-hub-secret' }

interface Sizes {
  shops: number
  tillsPerShop: number
  ingest: number
  fanOutSeconds: number
  catchUp: number
}

const FULL: Sizes = { shops: 10, tillsPerShop: 5, ingest: 10_000, fanOutSeconds: 3, catchUp: 100_000 }
const QUICK: Sizes = { shops: 2, tillsPerShop: 3, ingest: 1_000, fanOutSeconds: 0.5, catchUp: 5_000 }

async function until(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`hub bench: timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

/**
 * Resolves with the time `mesh` holds `n` documents of `collection`, counted
 * from its commits as they are made: polling a count would time the poll's
 * interval, and counting 100,000 documents every few milliseconds takes the
 * CPU of the very till being timed.
 */
function whenHolding(mesh: BuiltinMesh, collection: string, n: number, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let held = 0
    const timer = setTimeout(() => {
      obs.cancel()
      reject(new Error(`hub bench: timed out waiting for ${n} documents of ${collection} (${held} held)`))
    }, timeoutMs)
    const obs = mesh.observe(
      { collection },
      (c) => {
        held += c.inserted.length - c.removed.length
        if (held < n) return
        const at = performance.now()
        clearTimeout(timer)
        obs.cancel()
        resolve(at)
      },
      { initial: true },
    )
  })
}

/** Resolves with the time every till of `shop` holds `n` documents of `collection`. */
async function allHold(shop: BuiltinMesh[], collection: string, n: number, timeoutMs: number): Promise<number> {
  return Math.max(...(await Promise.all(shop.map((m) => whenHolding(m, collection, n, timeoutMs)))))
}

/** Writes `n` documents on the shop's first till; resolves with changes per second until every till holds them. */
async function ingest(shop: BuiltinMesh[], n: number, tag: string): Promise<number> {
  const held = allHold(shop, 'ingest', n, 300_000)
  const start = performance.now()
  for (let i = 0; i < n; i += 100) {
    const docs = Array.from({ length: Math.min(100, n - i) }, (_, j) => ({ _id: `${tag}-${i + j}`, n: i + j }))
    await shop[0]!.upsert('ingest', docs)
  }
  return n / (((await held) - start) / 1000)
}

/** One change a millisecond on the first till for `seconds`; the write-to-till latency of every other till, ms. */
async function fanOut(shop: BuiltinMesh[], seconds: number, tag: string): Promise<number[]> {
  const latencies: number[] = []
  const observers = shop.slice(1).map((m) =>
    m.observe({ collection: 'fan' }, (c) => {
      const at = performance.now()
      for (const d of [...c.inserted, ...c.updated]) latencies.push(at - (d.t as number))
    }),
  )
  await Promise.all(observers.map((o) => o.ready))
  const total = Math.round(seconds * 1000)
  const start = performance.now()
  for (let i = 0; i < total; i++) {
    await shop[0]!.upsert('fan', [{ _id: `${tag}-${i}`, t: performance.now() }])
    const wait = start + (i + 1) - performance.now()
    // Behind schedule, the writer still lets the event loop run between writes: a loop of writes that
    // never yields would hold every till's sockets in this process until it caught up, and that wait
    // would be measured as fan-out latency.
    await new Promise((r) => (wait > 1 ? setTimeout(r, wait) : setImmediate(r)))
  }
  await allHold(shop, 'fan', total, 120_000)
  await new Promise((r) => setTimeout(r, 50))
  for (const o of observers) o.cancel()
  return latencies
}

function res(
  name: string,
  workload: string,
  unit: string,
  better: 'higher' | 'lower',
  samples: readonly number[],
): BenchResult {
  return summarise({ suite: SUITE, name, workload, unit, better, warmup: 'none' }, samples)
}

export const hubSuite: BenchSuite = {
  name: SUITE,
  async run(ctx: BenchContext): Promise<BenchResult[]> {
    const s = ctx.quick ? QUICK : FULL
    let hub: DemoHub
    try {
      hub = await startDemoHub(ctx.tempDir('nats'))
    } catch (error) {
      if (!hasCode(error, ErrorCode.DEPENDENCY_MISSING) || process.env.CI) throw error
      ctx.log(`skipped: ${(error as Error).message}`)
      return []
    }
    const closers: { close(): Promise<void> }[] = []
    try {
      // ---- the fleet on the hub: shops × tills, each shop under its own prefix
      const fleet: { mesh: BuiltinMesh; link: HubLink }[][] = []
      for (let shop = 0; shop < s.shops; shop++) {
        const tills = []
        for (let t = 0; t < s.tillsPerShop; t++) {
          const mesh = await openBuiltinStore({ dir: ctx.tempDir('hub-till'), siteId: `s${shop}t${t}` })
          const link = startHubLink(mesh, { servers: hub.url, prefix: `bench.shop-${shop}` })
          closers.push(mesh, link)
          tills.push({ mesh, link })
        }
        fleet.push(tills)
      }
      await until(() => fleet.flat().every((t) => t.link.status().caughtUp), 60_000, 'the fleet on the hub')
      ctx.log(`${s.shops} shops × ${s.tillsPerShop} tills on the hub`)

      // ---- one shop of the same size, peer to peer over WebSockets (full mesh)
      const lan: ReplicatedMesh[] = []
      for (let t = 0; t < s.tillsPerShop; t++) {
        const m = await openMesh({
          ...MESH,
          dir: ctx.tempDir('lan-till'),
          siteId: `lan${t}`,
          listen: { host: '127.0.0.1', port: 0 },
          peers: lan.map((p) => `ws://127.0.0.1:${p.replication.port}`),
        })
        closers.push(m)
        lan.push(m)
      }
      await until(
        () => lan.every((m) => m.replication.peers().filter((p) => p.state === 'live').length >= s.tillsPerShop - 1),
        60_000,
        'the LAN shop',
      )
      const hubShop = fleet[0]!.map((t) => t.mesh)
      const lanShop: BuiltinMesh[] = lan

      const out: BenchResult[] = []
      const shape = `${s.shops} shops × ${s.tillsPerShop} tills (stores in one process, each with its own NATS connection) on one local nats-server`
      const lanShape = `one shop of ${s.tillsPerShop} tills (stores in one process), full WebSocket mesh on loopback`

      // Ingest
      const lanIngest = res(
        'p2p ingest',
        `${s.ingest} documents written on one till until every till of its shop holds them; ${lanShape}`,
        'changes/s',
        'higher',
        [await ingest(lanShop, s.ingest, 'lan')],
      )
      const hubIngest = res(
        'hub ingest',
        `${s.ingest} documents written on one till until every till of its shop holds them through the hub; ${shape}`,
        'changes/s',
        'higher',
        [await ingest(hubShop, s.ingest, 'hub')],
      )
      out.push(lanIngest, withBaseline(hubIngest, lanIngest))
      ctx.log(`ingest: hub ${Math.round(hubIngest.median)}/s, p2p ${Math.round(lanIngest.median)}/s`)

      // Fan-out latency at about 1,000 changes/s
      const lanLat = await fanOut(lanShop, s.fanOutSeconds, 'lan')
      const hubLat = await fanOut(hubShop, s.fanOutSeconds, 'hub')
      const fanWork = (how: string) =>
        `one change a millisecond (about 1,000/s) for ${s.fanOutSeconds} s on one till; time from the write to each other till's observer; ${how}`
      for (const p of [50, 99] as const) {
        const base = res(`p2p fan-out p${p}`, fanWork(lanShape), 'ms', 'lower', [percentile(lanLat, p)])
        const mine = res(`hub fan-out p${p}`, fanWork(shape), 'ms', 'lower', [percentile(hubLat, p)])
        const r = withBaseline(mine, base)
        if (p === 99) r.target = { description: 'p99 < 50 ms at 1,000 changes/s', pass: mine.median < 50 }
        out.push(base, r)
      }
      ctx.log(`fan-out p99: hub ${percentile(hubLat, 99).toFixed(1)} ms, p2p ${percentile(lanLat, 99).toFixed(1)} ms`)

      // Catch-up of a new till
      for (let i = 0; i < s.catchUp; i += 1000) {
        const docs = Array.from({ length: Math.min(1000, s.catchUp - i) }, (_, j) => ({
          _id: `bulk-${i + j}`,
          n: i + j,
          name: `item ${i + j}`,
        }))
        await hubShop[0]!.upsert('bulk', docs)
        await lanShop[0]!.upsert('bulk', docs)
      }
      await until(() => fleet[0]![0]!.link.status().unpushed === 0, 600_000, 'the bulk on the hub')
      await allHold(lanShop, 'bulk', s.catchUp, 600_000)
      await allHold(hubShop, 'bulk', s.catchUp, 600_000)
      // With every other till of the shop still on: the new till reads from the hub, or from one LAN peer.
      const lanStart = performance.now()
      const newLan = await openMesh({
        ...MESH,
        dir: ctx.tempDir('lan-new'),
        siteId: 'lan-new',
        peers: [`ws://127.0.0.1:${lan[0]!.replication.port}`],
      })
      closers.push(newLan)
      const lanCatchUp = ((await whenHolding(newLan, 'bulk', s.catchUp, 600_000)) - lanStart) / 1000
      const hubStart = performance.now()
      const newMesh = await openBuiltinStore({ dir: ctx.tempDir('hub-new'), siteId: 'hub-new' })
      const held = whenHolding(newMesh, 'bulk', s.catchUp, 600_000)
      const newLink = startHubLink(newMesh, { servers: hub.url, prefix: 'bench.shop-0' })
      const caughtUp = new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('hub bench: timed out waiting for the hub catch-up')), 600_000)
        newLink.on('caught-up', () => {
          clearTimeout(timer)
          resolve(performance.now())
        })
      })
      closers.push(newMesh, newLink)
      const hubCatchUp = (Math.max(await held, await caughtUp) - hubStart) / 1000
      const base = res(
        'p2p catch-up',
        `a new till joins and receives ${s.catchUp.toLocaleString('en')} documents from one peer; ${lanShape}`,
        's',
        'lower',
        [lanCatchUp],
      )
      const mine = withBaseline(
        res(
          'hub catch-up',
          `a new till joins and receives ${s.catchUp.toLocaleString('en')} documents (and the shop's other collections) from the hub; ${shape}`,
          's',
          'lower',
          [hubCatchUp],
        ),
        base,
      )
      mine.target = { description: 'within 2× of peer to peer', pass: (mine.ratio ?? 99) <= 2 }
      out.push(base, mine)
      ctx.log(`catch-up: hub ${hubCatchUp.toFixed(2)} s, p2p ${lanCatchUp.toFixed(2)} s`)
      return out
    } finally {
      for (const c of closers.reverse()) await c.close().catch(() => undefined)
      await hub.stop()
    }
  },
}
