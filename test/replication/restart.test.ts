import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { removeTempDirs, tempDir } from './helpers.js'
import { type PeerProcess, peersConverged, startPeer } from './peer-process.js'

const running: PeerProcess[] = []

afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.close()))
})
afterAll(removeTempDirs)

const base = { meshId: 'restart', secret: 'restart-secret', listen: { host: '127.0.0.1', port: 0 } }
const TOTAL = 20_000

describe('a peer killed mid-sync', () => {
  it('resumes from what it had after SIGKILL and a restart on the same directory, and converges', async () => {
    // Small chunks, one at a time: the catch-up takes many round trips, so the kill lands inside it.
    const a = await startPeer({ ...base, dir: tempDir(), siteId: 'a', chunkSize: 100, window: 1 })
    running.push(a)
    await a.call('bulk', { count: TOTAL })

    const dirB = tempDir()
    const b1 = await startPeer({
      ...base,
      dir: dirB,
      siteId: 'b',
      peers: [`ws://127.0.0.1:${a.port}`],
      announceEvery: 2000,
    })
    running.push(b1)
    await b1.waitFor((l) => l.t === 'seq' && (l.seq as number) >= 4000)
    await b1.kill()
    expect((await b1.exited).signal).toBe('SIGKILL')

    // Same directory, not dialing yet: count what survived the kill.
    const b2 = await startPeer({ ...base, dir: dirB, siteId: 'b' })
    running.push(b2)
    const had = b2.documentsAtStart
    expect(had).toBeGreaterThanOrEqual(4000)
    expect(had).toBeLessThan(TOTAL)

    await b2.call('add-peer', { url: `ws://127.0.0.1:${a.port}` })
    await peersConverged([a, b2], 30_000)
    const { stats } = (await b2.call('stats')) as { stats: { changesReceived: number; bytesReceived: number } }
    // Only what it lacked came again: no re-download of the documents it had.
    expect(stats.changesReceived).toBe(TOTAL - had)
    expect((await b2.call('state')).documents).toBe(TOTAL)
    // 200 round trips before the kill and after it, in processes that start and open their stores:
    // a busy machine needs more than the default 30 s, as much as the convergence wait alone allows.
  }, 120_000)
})
