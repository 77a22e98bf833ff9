import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { connect } from '@nats-io/transport-node'
import { afterEach, describe, expect, it } from 'vitest'
import { openBuiltinStore } from '../../src/engine/open-builtin-store.js'
import type { BuiltinMesh } from '../../src/engine/types.js'
import type { HubOptions } from '../../src/hub/hub-options.js'
import { dump, tempDir } from '../replication/helpers.js'
import { caughtUp, closeLater, closeOpened, eventually, openTill } from './helpers.js'
import { type NatsServer, natsMissing, startNatsCluster, startNatsServer, stopAll } from './nats-server.js'

const missing = natsMissing()
const servers: NatsServer[] = []

afterEach(async () => {
  await closeOpened()
  await stopAll(servers.splice(0))
})

/** A till linked to the hub, caught up. */
async function till(site: string, options: HubOptions, dir?: string) {
  const t = await openTill(site, options, dir)
  await caughtUp(t.link, 30_000)
  return t
}

async function write(mesh: BuiltinMesh, from: number, count: number, tag: string): Promise<void> {
  for (let i = from; i < from + count; i++) await mesh.upsert('sales', [{ _id: `${tag}${i}`, n: i }])
}

describe.skipIf(missing)('the hub goes away (real nats-server processes)', () => {
  it('tills keep working while the whole hub is stopped, and catch up when it returns', async () => {
    const hub = await startNatsServer()
    servers.push(hub)
    const opts = { servers: hub.url, prefix: 'outage' }
    const a = await till('a', opts)
    const b = await till('b', opts)
    await write(a.mesh, 0, 20, 'a')
    await eventually(async () => expect(await b.mesh.count({ collection: 'sales' })).toBe(20), 30_000)

    await hub.stop()
    await eventually(() => expect(a.link.status().state).toBe('reconnecting'), 30_000)
    // Local work goes on, unhindered.
    await write(a.mesh, 20, 100, 'a')
    await write(b.mesh, 0, 50, 'b')
    await a.mesh.upsert('stock', [{ _id: 'tea', name: 'tea' }])
    await a.mesh.increment('stock', 'tea', 'qty', 10)
    await b.mesh.increment('stock', 'tea', 'qty', -3)
    expect(await a.mesh.count({ collection: 'sales' })).toBe(120)
    expect(a.link.status().unpushed).toBeGreaterThan(0)

    await hub.start()
    await eventually(async () => {
      expect(await b.mesh.count({ collection: 'sales' })).toBe(170)
      expect(await a.mesh.count({ collection: 'sales' })).toBe(170)
      expect((await a.mesh.get('stock', 'tea'))?.qty).toBe(7)
      expect((await b.mesh.get('stock', 'tea'))?.qty).toBe(7)
    }, 60_000)
    expect(a.link.status().state).toBe('connected')
    expect(await dump(a.mesh)).toEqual(await dump(b.mesh))
  }, 120_000)

  it('a 3-server cluster with R3 loses nothing when a server is killed during writes', async () => {
    const cluster = await startNatsCluster(3)
    servers.push(...cluster)
    const opts = { servers: cluster.map((s) => s.url), prefix: 'r3', replicas: 3 }
    const a = await till('a', opts)
    const b = await till('b', opts)
    const writing = (async () => {
      for (let i = 0; i < 600; i += 10) {
        await a.mesh.upsert(
          'sales',
          Array.from({ length: 10 }, (_, j) => ({ _id: `s${i + j}`, n: i + j })),
        )
        await new Promise((r) => setTimeout(r, 10))
      }
    })()
    await eventually(async () => expect(await b.mesh.count({ collection: 'sales' })).toBeGreaterThan(100), 30_000)
    // The server till A is on goes, without a goodbye.
    const port = a.link.status().server?.split(':').pop()
    const victim = cluster.find((s) => s.url.endsWith(`:${port}`))
    expect(victim).toBeDefined()
    await victim!.stop('SIGKILL')
    await writing
    await b.mesh.upsert('sales', [{ _id: 'from-b', n: -1 }])
    await eventually(async () => {
      expect(await b.mesh.count({ collection: 'sales' })).toBe(601)
      expect(await a.mesh.count({ collection: 'sales' })).toBe(601)
    }, 90_000)
    expect(await dump(a.mesh)).toEqual(await dump(b.mesh))
    // A new till reads everything from the two servers left.
    const c = await till('c', { ...opts, servers: cluster.filter((s) => s.running).map((s) => s.url) })
    expect(await c.mesh.count({ collection: 'sales' })).toBe(601)
  }, 180_000)

  it("in a cluster, the watchdog asks about a watch's consumer only while nothing comes through it", async () => {
    const cluster = await startNatsCluster(3)
    servers.push(...cluster)
    const opts = { servers: cluster.map((s) => s.url), prefix: 'watchdog', replicas: 3 }
    const spy = await connect({ servers: cluster.map((s) => s.url) })
    closeLater({ close: () => spy.close() })
    const asked: number[] = []
    spy.subscribe('$JS.API.CONSUMER.INFO.>', {
      callback: () => {
        asked.push(Date.now())
      },
    })
    await spy.flush()
    const a = await till('a', opts)
    const b = await till('b', opts)
    // Both idle: each asks every few seconds (1.5 to 4.5 s apart).
    await eventually(() => expect(asked.length).toBeGreaterThanOrEqual(4), 20_000)
    // A's writes keep coming through both watches (A's own writes come back to it): neither asks
    // meanwhile, once the first write has come through.
    const from = Date.now()
    for (let i = 0; i < 60; i++) {
      await a.mesh.upsert('sales', [{ _id: `w${i}`, n: i }])
      await new Promise((r) => setTimeout(r, 100))
    }
    const to = Date.now()
    await eventually(async () => expect(await b.mesh.count({ collection: 'sales' })).toBe(60))
    expect(asked.filter((t) => t > from + 500 && t < to).length).toBe(0)
  }, 120_000)

  it('a till killed (SIGKILL) during its catch-up resumes where it was, downloading nothing twice', async () => {
    const hub = await startNatsServer()
    servers.push(hub)
    const opts = { servers: hub.url, prefix: 'sigkill' }
    const writer = await till('writer', opts)
    const total = 20_000
    for (let i = 0; i < total; i += 1000) {
      await writer.mesh.upsert(
        'items',
        Array.from({ length: 1000 }, (_, j) => ({ _id: `i${i + j}`, n: i + j, pad: 'p'.repeat(64) })),
      )
    }
    await eventually(() => expect(writer.link.status().pushed).toBe(total), 120_000)
    await writer.link.close()

    const dir = tempDir()
    const first = await runTill(dir, opts, (l) => l.received >= 3000 && !l.caughtUp)
    expect(first.caughtUp).toBe(false)
    const mesh = await openBuiltinStore({ dir, siteId: 'newcomer' })
    const kept = await mesh.count({ collection: 'items' })
    await mesh.close()
    expect(kept).toBeGreaterThan(0)
    expect(kept).toBeLessThan(total)
    const second = await runTill(dir, opts, (l) => l.caughtUp)
    // Exactly what the first run had not stored: nothing it had is downloaded again.
    expect(second.received).toBe(total - kept)
    const after = await openBuiltinStore({ dir, siteId: 'newcomer' })
    closeLater(after)
    expect(await after.count({ collection: 'items' })).toBe(total)
  }, 180_000)
})

interface Line {
  received: number
  caughtUp: boolean
}

/** Runs the till in a child process until a status line matches, then SIGKILLs it; resolves with that line. */
function runTill(dir: string, opts: { servers: string; prefix: string }, until: (l: Line) => boolean): Promise<Line> {
  const fixture = join(import.meta.dirname, 'fixtures', 'hub-till.ts')
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', fixture, JSON.stringify({ dir, site: 'newcomer', ...opts })],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let err = ''
  child.stderr.on('data', (d) => {
    err += String(d)
  })
  return new Promise((resolve, reject) => {
    let out = ''
    let done = false
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`the till never got there: ${err}`))
    }, 90_000)
    child.stdout.on('data', (d) => {
      out += String(d)
      for (let nl = out.indexOf('\n'); nl >= 0 && !done; nl = out.indexOf('\n')) {
        const line = JSON.parse(out.slice(0, nl)) as Line
        out = out.slice(nl + 1)
        if (until(line)) {
          done = true
          clearTimeout(timer)
          child.kill('SIGKILL')
          child.once('exit', () => resolve(line))
        }
      }
    })
  })
}
