import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { ErrorCode, openMesh, type ReplicationEvents } from '../../src/index.js'
import { eventually, removeTempDirs, tempDir } from './helpers.js'

afterAll(removeTempDirs)

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** A self-signed certificate for 127.0.0.1, made for this run. */
function selfSigned(): { cert: string; key: string } {
  const dir = tempDir('mm-tls-')
  const key = join(dir, 'key.pem')
  const cert = join(dir, 'cert.pem')
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
    ].concat(['-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1']),
    { stdio: 'ignore' },
  )
  return { cert: readFileSync(cert, 'utf8'), key: readFileSync(key, 'utf8') }
}

describe('openMesh, the one call', () => {
  it('opens a plain local store without replication options', async () => {
    await using mesh = await openMesh({ dir: tempDir() })
    expect('replication' in mesh).toBe(false)
    await mesh.upsert('orders', [{ _id: 'o1' }])
    expect(await mesh.get('orders', 'o1')).toEqual({ _id: 'o1' })
  })

  it('replicates when given a mesh id and a secret, and closes idempotently', async () => {
    const a = await openMesh({
      dir: tempDir(),
      meshId: 'one-call',
      secret: 'one-call-secret',
      listen: { host: '127.0.0.1', port: 0 },
    })
    const b = await openMesh({
      dir: tempDir(),
      meshId: 'one-call',
      secret: 'one-call-secret',
      peers: [`ws://127.0.0.1:${a.replication.port}`],
    })
    expect('replication' in b).toBe(true)
    const states: ReplicationEvents['peer']['state'][] = []
    b.replication.on('peer', (p) => states.push(p.state))
    await a.upsert('orders', [{ _id: 'o1', total: 3 }])
    await eventually(async () => (await b.get('orders', 'o1')) !== undefined, 10_000, 'replicated')
    expect(b.replication.peers()[0]).toMatchObject({ site: a.siteId, state: 'live', changesReceived: 1 })
    // The applied change is B's too until B's side of the link has passed over it (A has it already).
    await eventually(() => b.replication.peers()[0]?.lag === 0, 10_000, 'no lag')
    expect(states).toContain('live')
    // No echo: B's next write is the first and only change A receives (an echo would arrive before it).
    await b.upsert('orders', [{ _id: 'o2', total: 4 }])
    await eventually(async () => (await a.get('orders', 'o2')) !== undefined, 10_000, 'replicated back')
    expect(a.replication.stats().changesReceived).toBe(1)
    expect(b.replication.stats().changesSent).toBe(1)
    await Promise.all([b.close(), b.close()])
    await a.close()
    await a.close()
    expect(() => a.replication.peers()).not.toThrow()
  })

  it('does not send a live change back to the peer it came from', async () => {
    const secret = 'no-echo-secret'
    await using a = await openMesh({
      dir: tempDir(),
      meshId: 'no-echo',
      secret,
      listen: { host: '127.0.0.1', port: 0 },
    })
    await using b = await openMesh({
      dir: tempDir(),
      meshId: 'no-echo',
      secret,
      peers: [`ws://127.0.0.1:${a.replication.port}`],
    })
    const live = () => a.replication.stats().livePeers === 1 && b.replication.stats().livePeers === 1
    await eventually(live, 10_000, 'both sides live')
    // Each write reaches B once both ends are live: B's commit of it must not send it back to A.
    for (let i = 0; i < 5; i++) {
      await a.upsert('orders', [{ _id: `o${i}`, total: i }])
      await eventually(async () => (await b.get('orders', `o${i}`)) !== undefined, 10_000, `o${i} replicated`)
    }
    await eventually(() => a.replication.peers()[0]?.lag === 0 && b.replication.peers()[0]?.lag === 0, 10_000, 'acked')
    await b.upsert('orders', [{ _id: 'b1', total: 9 }])
    await eventually(async () => (await a.get('orders', 'b1')) !== undefined, 10_000, 'replicated back')
    // B's own write is the only change A ever received, and the only one B sent.
    expect(a.replication.stats().changesReceived).toBe(1)
    expect(b.replication.stats().changesSent).toBe(1)
  })

  it('refuses replication options without a secret, and leaves the directory closed', async () => {
    const dir = tempDir()
    await expect(
      openMesh({ dir, meshId: 'no-secret', listen: { host: '127.0.0.1', port: 0 } } as never),
    ).rejects.toMatchObject({
      code: ErrorCode.INVALID_OPTIONS,
      message: expect.stringMatching(/secret/),
    })
    await expect(openMesh({ dir, meshId: 'bad-window', secret: 'a-long-secret', window: 5000 })).rejects.toMatchObject({
      code: ErrorCode.INVALID_OPTIONS,
      message: expect.stringMatching(/window/),
    })
    // The store was closed again: it opens fine.
    await using again = await openMesh({ dir })
    expect(await again.collections()).toEqual([])
  })

  it('refuses a listen address another process uses, with ADDRESS_IN_USE', async () => {
    await using a = await openMesh({
      dir: tempDir(),
      meshId: 'busy',
      secret: 'busy-secret',
      listen: { host: '127.0.0.1', port: 0 },
    })
    const port = a.replication.port!
    await expect(
      openMesh({ dir: tempDir(), meshId: 'busy', secret: 'busy-secret', listen: { host: '127.0.0.1', port } }),
    ).rejects.toMatchObject({ code: ErrorCode.ADDRESS_IN_USE })
  })

  it.skipIf(!hasOpenssl())(
    'replicates over wss with a given certificate, and refuses an untrusted one (needs openssl to make the certificate)',
    async () => {
      const tls = selfSigned()
      const base = { meshId: 'tls', secret: 'tls-mesh-secret' }
      await using a = await openMesh({ ...base, dir: tempDir(), listen: { host: '127.0.0.1', port: 0 }, ws: { tls } })
      const url = `wss://127.0.0.1:${a.replication.port}`
      await using b = await openMesh({ ...base, dir: tempDir(), peers: [url], ws: { tls: { ca: tls.cert } } })
      await a.upsert('orders', [{ _id: 'secure' }])
      await eventually(async () => (await b.get('orders', 'secure')) !== undefined, 10_000, 'replicated over wss')

      // Without the CA, the dial fails the TLS check and nothing arrives.
      await using c = await openMesh({ ...base, dir: tempDir(), peers: [url], reconnect: { minMs: 20, maxMs: 50 } })
      await eventually(
        () => c.replication.peers().some((p) => p.state === 'connecting' && /certificate/.test(p.lastError ?? '')),
        10_000,
        'tls refusal',
      )
      expect(await c.collections()).toEqual([])
    },
  )
})
