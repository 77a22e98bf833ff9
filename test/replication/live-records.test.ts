import { afterAll, describe, expect, it } from 'vitest'
import { openReplicatedMesh, type ReplicatedMesh } from '../../src/index.js'
import { eventually, removeTempDirs, tempDir } from './helpers.js'
import { startProxy } from './tcp-proxy.js'

afterAll(removeTempDirs)

// What a live change costs on an encrypted link, counted on the wire between the two peers: the
// change goes out as one TLS record and its ack comes back as one. A frame split over two records,
// an extra frame per change (an echo, an empty chunk, a second ack), all cost a record, a write and
// a wake-up of the other process on every change.
describe('a live change on an encrypted link', () => {
  it('is one TLS record to the peer and one back, whichever side writes', async () => {
    const options = { meshId: 'live-records', secret: 'live-records-secret', ws: { keepAliveMs: 60_000 } }
    await using a = await openReplicatedMesh({ dir: tempDir(), ...options, listen: { host: '127.0.0.1', port: 0 } })
    const proxy = await startProxy(a.replication.port!)
    try {
      await using b = await openReplicatedMesh({ dir: tempDir(), ...options })
      // A change on each side before they link, so that no lag is left only once each side's catch-up is acknowledged.
      await a.upsert('orders', [{ _id: 'a-first', total: 1 }])
      await b.upsert('orders', [{ _id: 'b-first', total: 1 }])
      b.replication.addPeer(proxy.url)
      const settled = (m: ReplicatedMesh) =>
        m.replication.peers()[0]?.state === 'live' && m.replication.peers()[0]?.lag === 0
      await eventually(() => settled(a) && settled(b), 10_000, 'both sides live, their catch-ups acknowledged')

      // One write at a time, each acknowledged before the next: `up` is the dialer's way to the listener.
      const writes = async (from: ReplicatedMesh, to: ReplicatedMesh, prefix: string) => {
        const before = proxy.tlsRecords()
        for (let i = 0; i < 5; i++) {
          await from.upsert('orders', [{ _id: `${prefix}${i}`, total: i }])
          await eventually(async () => (await to.get('orders', `${prefix}${i}`)) !== undefined, 10_000, 'replicated')
          await eventually(() => settled(from) && settled(to), 10_000, 'acknowledged')
        }
        const after = proxy.tlsRecords()
        return { up: after.up - before.up, down: after.down - before.down }
      }
      expect(await writes(b, a, 'b')).toEqual({ up: 5, down: 5 })
      expect(await writes(a, b, 'a')).toEqual({ up: 5, down: 5 })
    } finally {
      await proxy.close()
    }
  })
})
