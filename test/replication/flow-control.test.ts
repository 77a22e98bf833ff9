import { afterAll, describe, expect, it } from 'vitest'
import { openMesh } from '../../src/index.js'
import { converged, removeTempDirs, tempDir } from './helpers.js'

afterAll(removeTempDirs)

describe('flow control between peers with different limits', () => {
  it("sends within the receiver's window and frame limit, whatever the sender's own settings", async () => {
    const base = { meshId: 'limits', secret: 'limits-secret' }
    // A sends large chunks, many at a time; B accepts one small frame at a time.
    await using a = await openMesh({
      ...base,
      dir: tempDir(),
      listen: { host: '127.0.0.1', port: 0 },
      chunkSize: 1000,
      window: 16,
    })
    const docs = Array.from({ length: 1200 }, (_, i) => ({ _id: `d${i}`, text: 'é'.repeat(500) }))
    for (let i = 0; i < docs.length; i += 500) await a.upsert('big', docs.slice(i, i + 500))
    await using b = await openMesh({
      ...base,
      dir: tempDir(),
      peers: [`ws://127.0.0.1:${a.replication.port}`],
      window: 1,
      ws: { maxFrameBytes: 64 * 1024 },
    })
    await converged([a, b], 20_000)
    expect(await b.count({ collection: 'big' })).toBe(1200)
    expect(a.replication.stats().rejectedConnections).toBe(0)
    expect(b.replication.stats().rejectedConnections).toBe(0)
    // Each frame had to fit 64 KiB: about 60 documents of 1 KB each.
    expect(a.replication.stats().bytesSent).toBeGreaterThan(1200 * 1000)
  })
})
