import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { removeTempDirs, tempDir } from './helpers.js'
import { type PeerProcess, peersConverged, startPeer } from './peer-process.js'

const SECRET = 'process-test-secret'
const running: PeerProcess[] = []

async function peer(siteId: string, peers: string[] = [], meshId = 'procs'): Promise<PeerProcess> {
  const p = await startPeer({
    dir: tempDir(),
    siteId,
    meshId,
    secret: SECRET,
    listen: { host: '127.0.0.1', port: 0 },
    peers,
  })
  running.push(p)
  return p
}

const url = (p: PeerProcess) => `ws://127.0.0.1:${p.port}`

afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.close()))
})
afterAll(removeTempDirs)

/** Waits until `p` reports `n` links live. */
async function live(p: PeerProcess, n: number): Promise<void> {
  const deadline = Date.now() + 15_000
  for (;;) {
    const { stats } = (await p.call('stats')) as { stats: { livePeers: number } }
    if (stats.livePeers >= n) return
    if (Date.now() > deadline) throw new Error(`${p.site}: ${stats.livePeers} of ${n} links live`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

describe('replication between processes over WebSocket on 127.0.0.1', () => {
  it('two peers converge on random concurrent writes, updates, increments and removals', async () => {
    const a = await peer('a')
    const b = await peer('b', [url(a)])
    await live(b, 1)
    const [ra, rb] = await Promise.all([
      a.call('ops', { seed: 11, count: 150 }),
      b.call('ops', { seed: 22, count: 150 }),
    ])
    const states = await peersConverged([a, b])
    expect(states[0]!.vv).toEqual({ a: expect.any(Number), b: expect.any(Number) })
    const tea = await a.call('get', { collection: 'stock', docId: 'tea' })
    const expected = (ra.increments as number) + (rb.increments as number)
    expect((tea.doc as { qty: number } | null)?.qty ?? 0).toBe(expected)
    expect((await b.call('get', { collection: 'stock', docId: 'tea' })).doc).toEqual(tea.doc)
  })

  it('three peers in a chain A–B–C converge, and a write on A reaches C through B', async () => {
    const a = await peer('a')
    const b = await peer('b', [url(a)])
    const c = await peer('c', [url(b)])
    await Promise.all([live(b, 2), live(c, 1)])
    await Promise.all([
      a.call('ops', { seed: 1, count: 120 }),
      b.call('ops', { seed: 2, count: 120 }),
      c.call('ops', { seed: 3, count: 120 }),
    ])
    await peersConverged([a, b, c])
    await a.call('upsert', { collection: 'orders', docs: [{ _id: 'o1', total: 42, till: 'a' }] })
    const deadline = Date.now() + 10_000
    let seen: unknown = null
    while (seen === null && Date.now() < deadline) {
      seen = (await c.call('get', { collection: 'orders', docId: 'o1' })).doc
    }
    expect(seen).toEqual({ _id: 'o1', total: 42, till: 'a' })
    // A and C never talk directly.
    const { peers } = (await a.call('stats')) as { peers: { site: string }[] }
    expect(peers.map((p) => p.site)).toEqual(['b'])
    await peersConverged([a, b, c])
  })
})
