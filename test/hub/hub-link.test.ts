import { connect } from '@nats-io/transport-node'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { openBuiltinStore } from '../../src/engine/open-builtin-store.js'
import { ErrorCode } from '../../src/errors.js'
import { startHubLink } from '../../src/hub/hub-link.js'
import type { HubOptions } from '../../src/hub/hub-options.js'
import { dump, tempDir } from '../replication/helpers.js'
import { caughtUp, closeLater, closeOpened, eventually, openTill } from './helpers.js'
import { type NatsServer, natsMissing, startNatsServer } from './nats-server.js'

const missing = natsMissing()
let hub: NatsServer

function till(site: string, options: Partial<HubOptions> = {}, dir?: string) {
  return openTill(site, { servers: hub.url, prefix: 'shop', ...options }, dir)
}

describe.skipIf(missing)('hub link (real nats-server)', () => {
  beforeAll(async () => {
    hub = await startNatsServer()
  })
  afterAll(async () => {
    await hub?.stop()
    hub?.remove()
  })
  afterEach(closeOpened)

  it('carries inserts, updates, deletes and counters both ways through the hub alone', async () => {
    const opts = { prefix: 'both-ways' }
    const a = await till('tillA', opts)
    const b = await till('tillB', opts)
    await caughtUp(a.link)
    await caughtUp(b.link)
    await a.mesh.upsert('products', [
      { _id: 'p1', name: 'tea', price: 3 },
      { _id: 'p2', name: 'coffee', price: 4 },
    ])
    await b.mesh.upsert('orders', [{ _id: 'o1', total: 10 }])
    await eventually(async () => {
      expect(await b.mesh.get('products', 'p1')).toEqual({ _id: 'p1', name: 'tea', price: 3 })
      expect(await a.mesh.get('orders', 'o1')).toEqual({ _id: 'o1', total: 10 })
    })
    await b.mesh.upsert('products', [{ _id: 'p1', price: 5 }])
    await a.mesh.remove('products', ['p2'])
    await a.mesh.upsert('stock', [{ _id: 's1', name: 'tea' }])
    await a.mesh.increment('stock', 's1', 'qty', 10)
    await eventually(async () => expect((await b.mesh.get('stock', 's1'))?.qty).toBe(10))
    // Concurrent increments on both tills: a counter adds up, it does not take the last writer's value.
    await Promise.all([
      a.mesh.increment('stock', 's1', 'qty', -3),
      b.mesh.increment('stock', 's1', 'qty', -2),
      a.mesh.increment('stock', 's1', 'qty', -1),
    ])
    await eventually(async () => {
      expect(await a.mesh.get('products', 'p1')).toEqual({ _id: 'p1', name: 'tea', price: 5 })
      expect(await b.mesh.get('products', 'p2')).toBeUndefined()
      expect((await a.mesh.get('stock', 's1'))?.qty).toBe(4)
      expect((await b.mesh.get('stock', 's1'))?.qty).toBe(4)
    })
    expect(await dump(a.mesh)).toEqual(await dump(b.mesh))
  })

  it('merges concurrent writes of one document exactly as peer links do', async () => {
    const opts = { prefix: 'concurrent' }
    const tills = await Promise.all(['t1', 't2', 't3'].map((s) => till(s, opts)))
    for (const t of tills) await caughtUp(t.link)
    await tills[0]!.mesh.upsert('notes', [{ _id: 'n', a: 0, b: 0, c: 0 }])
    await eventually(async () => {
      for (const t of tills) expect(await t.mesh.get('notes', 'n')).toBeDefined()
    })
    // Each till writes its own field of the same document at once, 20 times.
    await Promise.all(
      tills.map(async (t, i) => {
        for (let n = 1; n <= 20; n++) await t.mesh.upsert('notes', [{ _id: 'n', [['a', 'b', 'c'][i]!]: n }])
      }),
    )
    await eventually(async () => {
      for (const t of tills) expect(await t.mesh.get('notes', 'n')).toEqual({ _id: 'n', a: 20, b: 20, c: 20 })
    })
    const [d0, d1, d2] = await Promise.all(tills.map((t) => dump(t.mesh)))
    expect(d1).toEqual(d0)
    expect(d2).toEqual(d0)
  })

  it('a new till catches up from the hub with every other till stopped, and resumes from its position', async () => {
    const opts = { prefix: 'catch-up' }
    const a = await till('writer', opts)
    await caughtUp(a.link)
    const docs = Array.from({ length: 2000 }, (_, i) => ({ _id: `d${i}`, n: i, pad: 'x'.repeat(100) }))
    for (let i = 0; i < docs.length; i += 500) await a.mesh.upsert('items', docs.slice(i, i + 500))
    await eventually(() => expect(a.link.status().unpushed).toBe(0))
    await eventually(() => expect(a.link.status().pushed).toBe(2000))
    await a.link.close()
    await a.mesh.close()

    const b = await till('newcomer', opts)
    await caughtUp(b.link)
    expect(await b.mesh.count({ collection: 'items' })).toBe(2000)
    const received = b.link.status().received
    expect(received).toBe(2000)
    const dir = b.dir
    await b.link.close()
    await b.mesh.close()
    // Back again: nothing is downloaded twice.
    const again = await till('newcomer', opts, dir)
    await caughtUp(again.link)
    expect(again.link.status().received).toBe(0)
    expect(await again.mesh.count({ collection: 'items' })).toBe(2000)
  })

  it('commits a steady stream from the hub in batches at most one per applySpacingMs', async () => {
    const opts = { prefix: 'spacing' }
    const a = await till('streamer', opts)
    const b = await till('spaced', { ...opts, applySpacingMs: 50 })
    await caughtUp(a.link)
    await caughtUp(b.link)
    const commits: number[] = []
    b.mesh.onCommit(() => commits.push(performance.now()))
    // One document every 2 ms or so: without the spacing, about one commit each.
    for (let i = 0; i < 200; i++) {
      await a.mesh.upsert('stream', [{ _id: `s${i}`, n: i }])
      await new Promise((r) => setTimeout(r, 2))
    }
    await eventually(async () => expect(await b.mesh.count({ collection: 'stream' })).toBe(200))
    const span = commits[commits.length - 1]! - commits[0]!
    expect(commits.length).toBeLessThan(200)
    // Each commit but the first comes at least 50 ms after the one before it started.
    expect(commits.length).toBeLessThanOrEqual(Math.floor(span / 50) + 2)
  })

  it('does not read back what it stored from the hub as it came, and still sends its own writes', async () => {
    const opts = { prefix: 'no-read-back' }
    const a = await till('sender', opts)
    const b = await till('receiver', opts)
    await caughtUp(a.link)
    await caughtUp(b.link)
    // The store's own reads, counted.
    let changesRead = 0
    const changesFor = b.mesh.changesFor.bind(b.mesh)
    b.mesh.changesFor = async (...args) => {
      const chunk = await changesFor(...args)
      changesRead += chunk.changes.length
      return chunk
    }
    for (let i = 0; i < 300; i += 30)
      await a.mesh.upsert(
        'items',
        Array.from({ length: 30 }, (_, j) => ({ _id: `i${i + j}`, n: i + j })),
      )
    await eventually(async () => expect(await b.mesh.count({ collection: 'items' })).toBe(300))
    await eventually(() => expect(b.link.status().unpushed).toBe(0))
    expect(changesRead).toBe(0)
    expect(b.link.status().pushed).toBe(0)
    // Its own write is read and sent.
    await b.mesh.upsert('items', [{ _id: 'mine', n: -1 }])
    await eventually(async () => expect(await a.mesh.get('items', 'mine')).toEqual({ _id: 'mine', n: -1 }))
    expect(changesRead).toBe(1)
    expect(b.link.status().pushed).toBe(1)
    expect(await dump(a.mesh)).toEqual(await dump(b.mesh))
  })

  it('asks a single server nothing about its consumers while it runs, past each watch’s start', async () => {
    // A consumer's info costs the server a count over the bucket's keys and holds up the stream's
    // writes meanwhile; with one server, a consumer is lost only with the connection.
    const spy = await connect({ servers: hub.url })
    closeLater({ close: () => spy.close() })
    const asked: string[] = []
    spy.subscribe('$JS.API.CONSUMER.INFO.>', {
      callback: (_e, m) => {
        asked.push(m.subject)
      },
    })
    await spy.flush()
    const opts = { prefix: 'no-info' }
    const a = await till('quietA', opts)
    const b = await till('quietB', opts)
    await caughtUp(a.link)
    await caughtUp(b.link)
    // Each watch asks once as it starts, before it counts as caught up (for deliveries lost meanwhile).
    await spy.flush()
    expect(asked.length).toBeLessThanOrEqual(2)
    asked.length = 0
    await a.mesh.upsert('items', [{ _id: 'x', n: 1 }])
    await eventually(async () => expect(await b.mesh.get('items', 'x')).toEqual({ _id: 'x', n: 1 }))
    // Longer than the watchdog's longest period.
    await new Promise((r) => setTimeout(r, 5_000))
    expect(asked).toEqual([])
  }, 30_000)

  it('starts a watch again when it stops receiving: its own write never comes back', async () => {
    const opts = { prefix: 'deaf' }
    const a = await till('deafA', opts)
    const b = await till('deafB', opts)
    await caughtUp(a.link)
    await caughtUp(b.link)
    // A fault between the server and the watch: from now on, what b's watch is handed goes nowhere (the
    // consumer counts it delivered; nothing tells the client it is missing).
    const watch = (b.link as unknown as { watches: { iter: { push(e: unknown): void } }[] }).watches[0]!
    watch.iter.push = () => undefined
    await a.mesh.upsert('items', [{ _id: 'from-a', n: 1 }])
    await b.mesh.upsert('items', [{ _id: 'from-b', n: 2 }])
    await eventually(async () => expect(await a.mesh.get('items', 'from-b')).toEqual({ _id: 'from-b', n: 2 }))
    // b's own write was acknowledged and never came back through its watch: the watch starts again from its
    // position and gets what it missed.
    await eventually(async () => expect(await b.mesh.get('items', 'from-a')).toEqual({ _id: 'from-a', n: 1 }), 40_000)
  }, 60_000)

  it('refuses bad options with INVALID_OPTIONS', async () => {
    const mesh = await openBuiltinStore({ dir: tempDir(), siteId: 'x' })
    closeLater(mesh)
    expect(() => startHubLink(mesh, { servers: [], prefix: 'a' })).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_OPTIONS }),
    )
    expect(() => startHubLink(mesh, { servers: hub.url, prefix: 'a.>' })).toThrow(/prefix/)
    expect(() => startHubLink(mesh, { servers: hub.url, prefix: 'a', token: 't', user: 'u' })).toThrow(
      /one kind of credentials/,
    )
    expect(() => startHubLink(mesh, { servers: hub.url, prefix: 'a', password: 'p' })).toThrow(/needs "user"/)
    expect(() => startHubLink(mesh, { servers: hub.url, prefix: 'a', applySpacingMs: -1 })).toThrow(/applySpacingMs/)
  })
})
