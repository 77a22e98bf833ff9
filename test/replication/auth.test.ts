import { afterEach, describe, expect, it } from 'vitest'
import { openBuiltinStore } from '../../src/engine/open-builtin-store.js'
import type { BuiltinMesh } from '../../src/engine/types.js'
import { ErrorCode } from '../../src/errors.js'
import type { Logger } from '../../src/logger.js'
import { type ReplicationEvents, type Replicator, startReplication } from '../../src/replication/replicator.js'
import { wsTransport } from '../../src/replication/ws-transport.js'
import { removeTempDirs, tempDir } from './helpers.js'
import { rawPeer } from './raw-peer.js'

const open: { close(): Promise<void> }[] = []
/** The carrier a peer holding the mesh's secret dials with. */
const shopLink = wsTransport({ psk: { meshId: 'shop', secrets: ['the-right-secret'] } })
afterEach(async () => {
  for (const c of open.splice(0).reverse()) await c.close()
  removeTempDirs()
})

function capturingLogger(): Logger & { warnings: string[] } {
  const warnings: string[] = []
  const noop = () => {}
  return {
    warnings,
    debug: noop,
    info: noop,
    error: noop,
    warn: (message, fields) => warnings.push(`${message} ${JSON.stringify(fields ?? {})}`),
  }
}

async function node(
  siteId: string,
  options: {
    meshId?: string
    secret?: string
    peers?: string[]
    logger?: Logger
    handshakeTimeoutMs?: number
    insecure?: boolean
  } = {},
): Promise<{ mesh: BuiltinMesh; repl: Replicator; url: string }> {
  const mesh = await openBuiltinStore({ dir: tempDir(), siteId })
  open.push(mesh)
  const repl = await startReplication(mesh, {
    meshId: options.meshId ?? 'shop',
    secret: options.secret ?? 'the-right-secret',
    listen: { host: '127.0.0.1', port: 0 },
    peers: options.peers ?? [],
    reconnect: { minMs: 50, maxMs: 500 },
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.handshakeTimeoutMs ? { handshakeTimeoutMs: options.handshakeTimeoutMs } : {}),
    ...(options.insecure ? { insecure: true } : {}),
  })
  open.push(repl)
  return { mesh, repl, url: `ws://127.0.0.1:${repl.port}` }
}

function nextError(repl: Replicator): Promise<ReplicationEvents['error']> {
  return new Promise((resolve) => {
    const off = repl.on('error', (e) => {
      off()
      resolve(e)
    })
  })
}

describe('handshake and authentication', () => {
  it('refuses a wrong secret on both sides, logs why, and exchanges nothing', async () => {
    const logger = capturingLogger()
    const a = await node('a', { logger })
    await a.mesh.upsert('orders', [{ _id: 'o1', total: 10 }])
    const refused = nextError(a.repl)
    const b = await node('b', { secret: 'a-wrong-secret', peers: [a.url] })
    const refusedByB = nextError(b.repl)
    const [onA, onB] = await Promise.all([refused, refusedByB])
    expect(onA.error.code).toBe(ErrorCode.PEER_AUTH_FAILED)
    expect(onA.error.message).toMatch(/wrong secret/)
    expect(onB.error.code).toBe(ErrorCode.PEER_AUTH_FAILED)
    expect(logger.warnings.some((w) => w.includes('wrong secret'))).toBe(true)
    expect(a.repl.stats()).toMatchObject({ changesSent: 0, changesReceived: 0 })
    expect(a.repl.stats().rejectedConnections).toBeGreaterThanOrEqual(1)
    expect(b.repl.stats()).toMatchObject({ changesSent: 0, changesReceived: 0 })
    expect(await b.mesh.collections()).toEqual([])
  })

  // Link keys derive from the mesh id: another mesh fails the TLS handshake; over plain links, the hello says why.
  for (const [insecure, why] of [
    [false, /wrong secret, or another mesh id/],
    [true, /mesh another-shop is not mesh shop/],
  ] as const) {
    it(`refuses a peer of another mesh, and exchanges nothing${insecure ? ' (plain links)' : ''}`, async () => {
      const a = await node('a', { insecure })
      await a.mesh.upsert('orders', [{ _id: 'o1', total: 10 }])
      const refused = nextError(a.repl)
      const b = await node('b', { meshId: 'another-shop', peers: [a.url], insecure })
      const { error } = await refused
      expect(error.code).toBe(ErrorCode.PEER_AUTH_FAILED)
      expect(error.message).toMatch(why)
      expect(await b.mesh.collections()).toEqual([])
      expect(b.repl.stats().changesReceived).toBe(0)
    })
  }

  it('refuses an old protocol version with the reason', async () => {
    const logger = capturingLogger()
    const a = await node('a', { logger })
    const refused = nextError(a.repl)
    const raw = await rawPeer(shopLink, a.url, {
      site: 'old',
      meshId: 'shop',
      secret: 'the-right-secret',
      version: 1,
    })
    const reply = await raw.next((m) => m.t === 'error')
    expect(reply).toMatchObject({ t: 'error', message: expect.stringMatching(/protocol version 1 is not supported/) })
    await raw.closed
    expect((await refused).error.code).toBe(ErrorCode.PROTOCOL_ERROR)
    expect(logger.warnings.some((w) => w.includes('protocol version 1'))).toBe(true)
  })

  it('refuses a duplicate site id: its own, and a second link from a site already connected', async () => {
    const logger = capturingLogger()
    const a = await node('a', { logger })
    await a.mesh.upsert('orders', [{ _id: 'o1', total: 10 }])
    // A peer claiming A's own site id.
    const own = await rawPeer(shopLink, a.url, { site: 'a', meshId: 'shop', secret: 'the-right-secret' })
    expect(await own.next((m) => m.t === 'error')).toMatchObject({
      message: expect.stringMatching(/duplicate site id/),
    })

    // A first `x` connects and syncs; a second `x` is refused and gets nothing.
    const x1 = await node('x', { peers: [a.url] })
    await new Promise<void>((resolve) => {
      const check = () => a.repl.peers().some((p) => p.site === 'x' && p.state === 'live') && resolve()
      a.repl.on('peer', check)
      check()
    })
    const refused = nextError(a.repl)
    const x2 = await node('x', { peers: [a.url] })
    expect((await refused).error.message).toMatch(/duplicate site id x: already connected/)
    expect(await x1.mesh.get('orders', 'o1')).toEqual({ _id: 'o1', total: 10 })
    expect(await x2.mesh.collections()).toEqual([])
    expect(logger.warnings.filter((w) => w.includes('duplicate site id')).length).toBeGreaterThanOrEqual(2)
  })

  it('drops a link that never answers the challenge', async () => {
    const a = await node('a', { handshakeTimeoutMs: 100 })
    const refused = nextError(a.repl)
    const silent = await rawPeer(shopLink, a.url, {
      site: 'silent',
      meshId: 'shop',
      secret: 'the-right-secret',
      helloOnly: true,
    })
    const { error } = await refused
    expect(error.code).toBe(ErrorCode.PEER_AUTH_FAILED)
    expect(error.message).toMatch(/no authentication within 100 ms/)
    await silent.closed
    expect(a.repl.peers()).toEqual([])
  })
})
