import { connect } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { openBuiltinStore } from '../../src/engine/open-builtin-store.js'
import type { BuiltinMesh } from '../../src/engine/types.js'
import { ErrorCode } from '../../src/errors.js'
import {
  type ReplicationEvents,
  type ReplicationOptions,
  type Replicator,
  startReplication,
} from '../../src/replication/replicator.js'
import { eventually, removeTempDirs, tempDir } from './helpers.js'
import { startProxy } from './tcp-proxy.js'

const closers: { close(): Promise<void> }[] = []
afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c.close()
  removeTempDirs()
})

type NodeOptions = Partial<Omit<ReplicationOptions, 'meshId'>> & { meshId?: string }

async function store(siteId: string): Promise<BuiltinMesh> {
  const mesh = await openBuiltinStore({ dir: tempDir(), siteId })
  closers.push(mesh)
  return mesh
}

async function replicate(mesh: BuiltinMesh, options: NodeOptions = {}): Promise<Replicator> {
  const repl = await startReplication(mesh, {
    meshId: 'till-mesh',
    secret: 'the-mesh-secret',
    listen: { host: '127.0.0.1', port: 0 },
    reconnect: { minMs: 20, maxMs: 200 },
    ...options,
  })
  closers.push(repl)
  return repl
}

function errors(repl: Replicator): ReplicationEvents['error'][] {
  const seen: ReplicationEvents['error'][] = []
  repl.on('error', (e) => seen.push(e))
  return seen
}

const url = (r: Replicator) => `ws://127.0.0.1:${r.port}`

describe('link security', () => {
  // The value a shop would least like to leak: it must never cross the LAN readable.
  const CARD = 'card-4929-1234-5678-9012'

  for (const insecure of [false, true]) {
    it(`${insecure ? 'with insecure: true, carries documents in plain text' : 'by default, encrypts the link: the bytes on the wire never show a document'}`, async () => {
      const a = await store('a')
      const b = await store('b')
      const ra = await replicate(a, { insecure })
      // What an eavesdropper on the LAN records.
      const relay = await startProxy(ra.port!, { record: true })
      closers.push(relay)
      const rb = await replicate(b, { insecure, peers: [relay.url], listen: undefined })
      await a.upsert('payments', [{ _id: 'p1', card: CARD }])
      await eventually(async () => (await b.get('payments', 'p1'))?.card === CARD, 10_000, 'the payment on b')
      // And back the other way, live.
      await b.upsert('payments', [{ _id: 'p2', card: `${CARD}-b` }])
      await eventually(async () => (await a.get('payments', 'p2')) !== undefined, 10_000, 'the payment on a')
      const wire = relay.recorded()
      expect(wire.length).toBeGreaterThan(1000)
      expect(wire.includes(CARD)).toBe(insecure)
      expect(wire.includes('"t":"hello"')).toBe(insecure)
      const security = insecure ? 'insecure' : 'psk'
      expect(ra.peers().map((p) => p.security)).toEqual([security])
      expect(rb.peers().map((p) => p.security)).toEqual([security])
      if (!insecure) {
        // A TLS 1.2 handshake record, then only encrypted application data (content type 23).
        expect(wire[0]).toBe(0x16)
      }
    })
  }

  it('refuses a peer with the wrong secret at the TLS handshake, on both sides, and exchanges nothing', async () => {
    const a = await store('a')
    await a.upsert('orders', [{ _id: 'o1', total: 10 }])
    const ra = await replicate(a)
    const onA = errors(ra)
    const b = await store('b')
    const rb = await replicate(b, { secret: 'not-the-mesh-secret', peers: [url(ra)] })
    const onB = errors(rb)
    await eventually(() => onA.length > 0 && onB.length > 0, 10_000, 'refusals on both sides')
    for (const { error } of [...onA, ...onB]) {
      expect(error.code).toBe(ErrorCode.PEER_AUTH_FAILED)
      expect(error.message).toMatch(/wrong secret, or another mesh id/)
    }
    expect(onB[0]!.peer).toMatchObject({ direction: 'outbound', remote: url(ra), state: 'closed' })
    expect(ra.stats().rejectedConnections).toBeGreaterThanOrEqual(1)
    expect(rb.stats().rejectedConnections).toBeGreaterThanOrEqual(1)
    expect(rb.peers()).toMatchObject([{ state: 'connecting', lastError: expect.stringMatching(/wrong secret/) }])
    expect(ra.peers()).toEqual([])
    expect(await b.collections()).toEqual([])
  })

  it('tells a plain dialer and an encrypted listener apart, both ways, with a clear error and no link', async () => {
    const a = await store('a')
    const b = await store('b')
    const c = await store('c')
    const encrypted = await replicate(a)
    const plain = await replicate(b, { insecure: true })
    const onEncrypted = errors(encrypted)
    const onPlain = errors(plain)
    // c dials both: plain towards the encrypted listener…
    const plainDialer = await replicate(c, { insecure: true, listen: undefined, peers: [url(encrypted)] })
    const onPlainDialer = errors(plainDialer)
    await eventually(() => onEncrypted.length > 0 && onPlainDialer.length > 0, 10_000, 'both ends of plain → TLS')
    expect(onPlainDialer[0]!.error).toMatchObject({
      code: ErrorCode.PROTOCOL_ERROR,
      message: expect.stringMatching(/accepts encrypted links only, and this peer is configured `insecure: true`/),
    })
    expect(onEncrypted[0]!.error).toMatchObject({
      code: ErrorCode.PROTOCOL_ERROR,
      message: expect.stringMatching(/dialed a plain link/),
    })
    await plainDialer.close()
    // …and encrypted towards the plain listener.
    const encryptedDialer = await replicate(c, { listen: undefined, peers: [url(plain)] })
    const onEncryptedDialer = errors(encryptedDialer)
    await eventually(() => onPlain.length > 0 && onEncryptedDialer.length > 0, 10_000, 'both ends of TLS → plain')
    expect(onEncryptedDialer[0]!.error).toMatchObject({
      code: ErrorCode.PROTOCOL_ERROR,
      message: expect.stringMatching(/does not speak TLS: its listener is configured `insecure: true`/),
    })
    expect(onPlain[0]!.error).toMatchObject({
      code: ErrorCode.PROTOCOL_ERROR,
      message: expect.stringMatching(/dialed an encrypted link/),
    })
    // Both listeners still serve peers that agree with them.
    const d = await store('d')
    await a.upsert('orders', [{ _id: 'from-a' }])
    await b.upsert('orders', [{ _id: 'from-b' }])
    await replicate(d, { listen: undefined, peers: [url(encrypted)] })
    const e = await store('e')
    await replicate(e, { insecure: true, listen: undefined, peers: [url(plain)] })
    await eventually(async () => (await d.get('orders', 'from-a')) !== undefined, 10_000, 'd linked with a')
    await eventually(async () => (await e.get('orders', 'from-b')) !== undefined, 10_000, 'e linked with b')
  })

  it('tells a certificate (wss://) dialer that the listener encrypts with the mesh secret', async () => {
    const a = await store('a')
    const ra = await replicate(a)
    const onA = errors(ra)
    const b = await store('b')
    const rb = await replicate(b, { listen: undefined, peers: [`wss://127.0.0.1:${ra.port}`] })
    const onB = errors(rb)
    await eventually(() => onA.length > 0 && onB.length > 0, 10_000, 'both ends of certificate TLS → PSK TLS')
    expect(onB[0]!.error).toMatchObject({
      code: ErrorCode.PROTOCOL_ERROR,
      message: expect.stringMatching(/accepts no certificate TLS: .*dial it with ws:\/\//),
    })
    expect(onA[0]!.error).toMatchObject({
      code: ErrorCode.PROTOCOL_ERROR,
      message: expect.stringMatching(/offers no cipher of encrypted meshmirror links/),
    })
  })

  it('drops a connection whose first bytes are neither TLS nor HTTP, and keeps serving', async () => {
    const a = await store('a')
    const ra = await replicate(a)
    const garbage = connect(ra.port!, '127.0.0.1')
    const closed = new Promise<void>((resolve) => garbage.on('close', () => resolve()))
    garbage.on('error', () => undefined)
    garbage.write(Buffer.from([0, 1, 2, 3, 4, 5]))
    await closed
    // The listener is unharmed.
    const b = await store('b')
    await a.upsert('orders', [{ _id: 'o1' }])
    await replicate(b, { listen: undefined, peers: [url(ra)] })
    await eventually(async () => (await b.get('orders', 'o1')) !== undefined, 10_000, 'b linked')
  })

  it('validates the secrets and insecure options', async () => {
    const a = await store('a')
    const bad = (o: NodeOptions) => expect(replicate(a, o)).rejects.toMatchObject({ code: ErrorCode.INVALID_OPTIONS })
    await bad({ previousSecrets: ['short'] })
    await bad({ previousSecrets: ['the-mesh-secret'] })
    await bad({ previousSecrets: ['one-old-secret', 'one-old-secret'] })
    await bad({ previousSecrets: ['old-secret-1', 'old-secret-2', 'old-secret-3', 'old-secret-4'] })
    await bad({ insecure: 'yes' as unknown as boolean })
  })
})

describe('secret rotation', () => {
  /**
   * Three tills, each linked with the other two, move from OLD to NEW the
   * documented way, one till at a time: first each adds NEW (keeping OLD),
   * then each drops OLD. After every step every till writes, and every
   * till must receive what the others wrote.
   */
  it('keeps three tills replicating at every step of a rolling rotation', async () => {
    const OLD = 'the-old-mesh-secret'
    const NEW = 'the-new-mesh-secret'
    const sites = ['t1', 't2', 't3'] as const
    const meshes = await Promise.all(sites.map((s) => store(s)))
    const repls: Replicator[] = []
    const ports: number[] = []
    const authFailures: string[] = []
    // Each till dials the ones after it: every pair has one link.
    const start = async (i: number, secrets: { secret: string; previousSecrets?: string[] }) => {
      const r = await startReplication(meshes[i]!, {
        meshId: 'rotating-shop',
        ...secrets,
        listen: { host: '127.0.0.1', port: ports[i] ?? 0 },
        peers: ports.length === 3 ? ports.filter((_, j) => j > i).map((p) => `ws://127.0.0.1:${p}`) : [],
        reconnect: { minMs: 20, maxMs: 200 },
      })
      r.on('error', ({ error }) => {
        if (error.code === ErrorCode.PEER_AUTH_FAILED) authFailures.push(`${sites[i]}: ${error.message}`)
      })
      repls[i] = r
      ports[i] = r.port!
    }
    for (let i = 0; i < 3; i++) await start(i, { secret: OLD })
    // Now every port is known: start again, dialing.
    for (let i = 0; i < 3; i++) {
      await repls[i]!.close()
      await start(i, { secret: OLD })
    }
    let round = 0
    const allConverge = async (step: string) => {
      round++
      for (const [i, m] of meshes.entries()) await m.upsert('sales', [{ _id: `${step}-${sites[i]}`, round }])
      await eventually(
        async () => {
          for (const m of meshes) for (const s of sites) if (!(await m.get('sales', `${step}-${s}`))) return false
          return true
        },
        15_000,
        `every till has every sale of step "${step}"`,
      )
      // Every pair is linked and live.
      await eventually(
        () => repls.every((r) => r.peers().filter((p) => p.state === 'live').length === 2),
        15_000,
        `all links live at step "${step}"`,
      )
    }
    const restart = async (i: number, secrets: { secret: string; previousSecrets?: string[] }) => {
      await repls[i]!.close()
      await start(i, secrets)
    }

    await allConverge('all-old')
    // Wave 1: each till in turn holds NEW, still accepting OLD.
    for (let i = 0; i < 3; i++) {
      await restart(i, { secret: NEW, previousSecrets: [OLD] })
      await allConverge(`${sites[i]}-added-new`)
    }
    // Wave 2: each till in turn drops OLD.
    for (let i = 0; i < 3; i++) {
      await restart(i, { secret: NEW })
      await allConverge(`${sites[i]}-dropped-old`)
    }
    expect(authFailures).toEqual([])

    // Once rotated, a till still on OLD alone is refused, and gets nothing.
    const stale = await store('stale')
    const staleRepl = await replicate(stale, {
      meshId: 'rotating-shop',
      secret: OLD,
      listen: undefined,
      peers: [`ws://127.0.0.1:${ports[0]}`],
    })
    const refused = errors(staleRepl)
    await eventually(() => refused.length > 0, 10_000, 'the stale till refused')
    expect(refused[0]!.error.code).toBe(ErrorCode.PEER_AUTH_FAILED)
    expect(await stale.collections()).toEqual([])
    for (const r of repls) closers.push(r)
  })

  it('proves membership with a secret both hold over plain links too (insecure rotation)', async () => {
    const a = await store('a')
    const b = await store('b')
    const ra = await replicate(a, { insecure: true, secret: 'the-new-secret', previousSecrets: ['the-old-secret'] })
    const onA = errors(ra)
    await a.upsert('orders', [{ _id: 'o1' }])
    const rb = await replicate(b, { insecure: true, secret: 'the-old-secret', listen: undefined, peers: [url(ra)] })
    await eventually(async () => (await b.get('orders', 'o1')) !== undefined, 10_000, 'b linked over the old secret')
    expect(onA).toEqual([])
    expect(rb.peers()[0]!.security).toBe('insecure')
  })
})
