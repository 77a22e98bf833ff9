import { afterAll, describe, expect, it } from 'vitest'
import { openBuiltinStore } from '../../src/engine/open-builtin-store.js'
import { MemoryNetwork } from '../../src/replication/memory-transport.js'
import { startReplication } from '../../src/replication/replicator.js'
import type { Transport } from '../../src/replication/transport.js'
import { converged, eventually, removeTempDirs, tempDir } from './helpers.js'

afterAll(removeTempDirs)

describe('forwarding in a chain A–B–C', () => {
  it('forwards a version vector learned from a catch-up that ends without a document of its own', async () => {
    await using a = await openBuiltinStore({ dir: tempDir(), siteId: 'a' })
    await using b = await openBuiltinStore({ dir: tempDir(), siteId: 'b' })
    await using c = await openBuiltinStore({ dir: tempDir(), siteId: 'c' })
    // A: three documents of its own, then one it already got from B, last in its change order.
    await a.upsert('docs', [{ _id: 'a1' }, { _id: 'a2' }, { _id: 'a3' }])
    await b.upsert('docs', [{ _id: 'b1' }])
    await a.applyRemote((await b.changesFor({}, 0, 10)).changes)

    // A–B is slow and B–C fast, and A sends one chunk at a time: B forwards a1-a3 to C, and C
    // acknowledges them, well before A's last chunk reaches B.
    const slow = new MemoryNetwork({ latencyMs: () => 30 }).transport()
    const fast = new MemoryNetwork().transport()
    const both: Transport = {
      listen: fast.listen,
      dial: (url, signal) => (url.startsWith('mem://a') ? slow : fast).dial(url, signal),
    }
    const common = { meshId: 'chain', secret: 'chain-secret' }
    // Chunks of three: A's catch-up to B is a chunk with a1-a3, then an empty complete one carrying A's vector.
    await using ra = await startReplication(a, {
      ...common,
      transport: slow,
      listen: { host: 'a', port: 1 },
      chunkSize: 3,
      window: 1,
    })
    await using rc = await startReplication(c, { ...common, transport: fast, listen: { host: 'c', port: 1 } })
    await using rb = await startReplication(b, { ...common, transport: both, peers: ['mem://c:1'] })
    await eventually(() => rc.peers().some((p) => p.state === 'live'), 5_000, 'B–C live')
    rb.addPeer('mem://a:1')
    await converged([a, b, c], 5_000)
    expect(await c.versionVector()).toEqual(await a.versionVector())
    expect(ra.stats().rejectedConnections + rb.stats().rejectedConnections).toBe(0)
  })
})
