import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { removeTempDirs, tempDir } from './helpers.js'
import { type PeerProcess, peersConverged, startPeer } from './peer-process.js'
import { startProxy, type TcpProxy } from './tcp-proxy.js'

const running: PeerProcess[] = []
const proxies: TcpProxy[] = []

afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.close()))
  await Promise.all(proxies.splice(0).map((p) => p.close()))
})
afterAll(removeTempDirs)

async function peer(siteId: string, keepAliveMs?: number): Promise<PeerProcess> {
  const p = await startPeer({
    ...(keepAliveMs ? { keepAliveMs } : {}),
    dir: tempDir(),
    siteId,
    meshId: 'partition',
    secret: 'partition-secret',
    listen: { host: '127.0.0.1', port: 0 },
  })
  running.push(p)
  return p
}

async function proxyTo(p: PeerProcess): Promise<TcpProxy> {
  const proxy = await startProxy(p.port)
  proxies.push(proxy)
  return proxy
}

async function livePeers(p: PeerProcess): Promise<number> {
  const { stats } = (await p.call('stats')) as { stats: { livePeers: number } }
  return stats.livePeers
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not reached`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

describe('partition and heal through a TCP proxy', () => {
  it('every peer converges after links are cut, written on both sides, and restored', async () => {
    // A triangle where every link goes through a proxy the test controls.
    const [a, b, c] = await Promise.all([peer('a'), peer('b'), peer('c')])
    const [toA, toB, toC] = await Promise.all([proxyTo(a), proxyTo(b), proxyTo(c)])
    await b.call('add-peer', { url: toA.url })
    await c.call('add-peer', { url: toB.url })
    await a.call('add-peer', { url: toC.url })
    await until(async () => (await Promise.all([a, b, c].map(livePeers))).every((n) => n === 2), 'all links live')
    await Promise.all([a.call('ops', { seed: 5, count: 40 }), b.call('ops', { seed: 6, count: 40 })])
    await peersConverged([a, b, c])

    // Cut A off from B and C; B and C still talk to each other.
    toA.cut()
    toC.cut()
    await until(async () => (await livePeers(a)) === 0, 'A partitioned')
    await Promise.all([
      a.call('ops', { seed: 7, count: 80 }),
      b.call('ops', { seed: 8, count: 80 }),
      c.call('ops', { seed: 9, count: 80 }),
    ])
    await a.call('upsert', { collection: 'orders', docs: [{ _id: 'during-partition', till: 'a' }] })
    // B and C converge between themselves; A cannot have B's writes.
    await peersConverged([b, c])
    expect((await b.call('get', { collection: 'orders', docId: 'during-partition' })).doc).toBeNull()

    toA.heal()
    toC.heal()
    const states = await peersConverged([a, b, c])
    expect(Object.keys(states[0]!.vv as object).sort()).toEqual(['a', 'b', 'c'])
    expect((await c.call('get', { collection: 'orders', docId: 'during-partition' })).doc).toEqual({
      _id: 'during-partition',
      till: 'a',
    })
  })

  it('notices a dead route by keep-alive, and converges once it is back', async () => {
    const [a, b] = await Promise.all([peer('a', 150), peer('b', 150)])
    const toA = await proxyTo(a)
    await b.call('add-peer', { url: toA.url })
    await until(async () => (await livePeers(a)) === 1 && (await livePeers(b)) === 1, 'link live')
    // Bytes vanish, no FIN, no RST: the link looks open to both.
    toA.blackhole()
    await a.call('upsert', { collection: 'orders', docs: [{ _id: 'lost-in-transit' }] })
    await until(async () => (await livePeers(a)) === 0 && (await livePeers(b)) === 0, 'dead link dropped')
    const { peers } = (await b.call('stats')) as { peers: { state: string; lastError?: string }[] }
    expect(peers.map((p) => p.lastError)).toContain('keep-alive timeout')
    toA.heal()
    await peersConverged([a, b])
    expect((await b.call('get', { collection: 'orders', docId: 'lost-in-transit' })).doc).toEqual({
      _id: 'lost-in-transit',
    })
  })
})
