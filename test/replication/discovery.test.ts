import { afterAll, describe, expect, it } from 'vitest'
import { openMesh } from '../../src/index.js'
import { eventually, removeTempDirs, tempDir } from './helpers.js'

afterAll(removeTempDirs)

describe('LAN discovery (mDNS/DNS-SD)', () => {
  it('finds a peer of the same mesh without any static peer, and ignores other meshes', async () => {
    // A mesh id of this run only, so other runs on the LAN do not join.
    const meshId = `disc-${process.pid}-${Date.now()}`
    const base = { secret: 'discovery-secret', listen: { host: '0.0.0.0', port: 0 }, discovery: true }
    await using a = await openMesh({ ...base, meshId, dir: tempDir() })
    await using b = await openMesh({ ...base, meshId, dir: tempDir() })
    await using other = await openMesh({ ...base, meshId: `${meshId}-other`, dir: tempDir() })
    await a.upsert('orders', [{ _id: 'found-by-mdns' }])
    await eventually(async () => (await b.get('orders', 'found-by-mdns')) !== undefined, 10_000, 'discovered')
    expect(a.replication.peers().map((p) => p.site)).toEqual([b.siteId])
    expect(other.replication.peers()).toEqual([])
    expect(await other.collections()).toEqual([])
  })
})
