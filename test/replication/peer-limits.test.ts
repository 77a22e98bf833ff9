import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openBuiltinStore } from '../../src/engine/open-builtin-store.js'
import type { BuiltinMesh, RemoteChange } from '../../src/engine/types.js'
import { ErrorCode } from '../../src/errors.js'
import type { Logger } from '../../src/logger.js'
import type { Message } from '../../src/replication/protocol.js'
import { type ReplicationEvents, type Replicator, startReplication } from '../../src/replication/replicator.js'
import { wsTransport } from '../../src/replication/ws-transport.js'
import { eventually, removeTempDirs, tempDir } from './helpers.js'
import { type RawPeer, rawPeer, syncEmpty } from './raw-peer.js'

const SECRET = 'limits-test-secret'
/** The links are encrypted with a key from the mesh secret, as a peer's are. */
const PSK = { meshId: 'limits', secrets: [SECRET] }
const LIMITS = {
  maxDocumentBytes: 4096,
  maxFieldsPerDocument: 20,
  maxCollections: 40,
  maxChangesPerSecond: 400,
  burstChanges: 400,
}
let a: { mesh: BuiltinMesh; repl: Replicator; url: string }
let b: { mesh: BuiltinMesh; repl: Replicator }
const errors: ReplicationEvents['error'][] = []
const logged: { message: string; fields: Record<string, unknown> | undefined }[] = []
let template: RemoteChange
/** A removed document, as another replica would send it. */
let tombstone: RemoteChange
let honestWrites = 0
let writer: NodeJS.Timeout
let honestSince: string

const logger: Logger = {
  debug: () => undefined,
  info: () => undefined,
  warn: (message, fields) => logged.push({ message, fields }),
  error: (message, fields) => logged.push({ message, fields }),
}

/** A valid change of a document `id` in `collection` with `fields`, as another replica would send it. */
function change(id: string, fields: Record<string, unknown> = { v: 1 }, collection = 'hostile'): RemoteChange {
  return { ...template, collection, id, doc: { _id: id, ...fields } }
}

function chunk(n: number, changes: RemoteChange[]): Message {
  return { t: 'changes', n, changes, cursor: n, complete: false }
}

async function attacker(site: string): Promise<RawPeer> {
  const raw = await rawPeer(wsTransport({ maxFrameBytes: 16 * 1024 * 1024, psk: PSK }), a.url, {
    site,
    meshId: 'limits',
    secret: SECRET,
  })
  await syncEmpty(raw)
  return raw
}

/** Waits for the link to be dropped and returns the error it was dropped with. */
async function dropped(raw: RawPeer, site: string): Promise<ReplicationEvents['error']> {
  await raw.closed
  let found: ReplicationEvents['error'] | undefined
  await eventually(
    () => {
      found = errors.find((e) => e.peer.site === site)
      return found !== undefined
    },
    5_000,
    `the error event for ${site}`,
  )
  return found!
}

beforeAll(async () => {
  const scratch = await openBuiltinStore({ dir: tempDir(), siteId: 'mallory' })
  await scratch.upsert('hostile', [{ _id: 'template', v: 1 }])
  template = (await scratch.changesFor({}, 0, 10)).changes[0]!
  await scratch.upsert('hostile', [{ _id: 'ghost', v: 1 }])
  await scratch.remove('hostile', ['ghost'])
  tombstone = (await scratch.changesFor({}, 0, 10)).changes.find((c) => c.id === 'ghost')!
  await scratch.close()

  const meshA = await openBuiltinStore({ dir: tempDir(), siteId: 'a' })
  // The collections the honest peers use exist from the start.
  await meshA.upsert('hostile', [{ _id: 'seed' }])
  await meshA.upsert('orders', [{ _id: 'seed' }])
  const replA = await startReplication(meshA, {
    meshId: 'limits',
    secret: SECRET,
    listen: { host: '127.0.0.1', port: 0 },
    window: 2,
    limits: LIMITS,
    logger,
  })
  replA.on('error', (e) => errors.push(e))
  a = { mesh: meshA, repl: replA, url: `ws://127.0.0.1:${replA.port}` }
  const meshB = await openBuiltinStore({ dir: tempDir(), siteId: 'b' })
  const replB = await startReplication(meshB, { meshId: 'limits', secret: SECRET, peers: [a.url] })
  b = { mesh: meshB, repl: replB }
  await eventually(() => a.repl.peers().some((p) => p.site === 'b' && p.state === 'live'), 10_000, 'b live')
  honestSince = a.repl.peers().find((p) => p.site === 'b')!.connectedAt
  // The honest peer keeps writing throughout.
  writer = setInterval(() => {
    honestWrites++
    void b.mesh.upsert('orders', [{ _id: `b${honestWrites}`, n: honestWrites }])
  }, 20)
})

afterAll(async () => {
  clearInterval(writer)
  await b.repl.close()
  await a.repl.close()
  await b.mesh.close()
  await a.mesh.close()
  removeTempDirs()
})

describe('limits on what one peer can make another do', () => {
  it('refuses startReplication with malformed limits', async () => {
    for (const limits of [{ maxCollections: 0 }, { maxDocumentBytes: 1.5 }, { maxFields: 3 }, 'many']) {
      await expect(
        startReplication(a.mesh, { meshId: 'limits', secret: SECRET, limits: limits as never }),
      ).rejects.toMatchObject({ code: ErrorCode.INVALID_OPTIONS })
    }
  })

  it('drops a link that sends a document over maxDocumentBytes, applying nothing of the chunk', async () => {
    const raw = await attacker('big')
    raw.send(chunk(1, [change('big1'), change('big2', { pad: 'é'.repeat(3000) })]))
    const e = await dropped(raw, 'big')
    expect(e.error.code).toBe(ErrorCode.PEER_LIMIT_EXCEEDED)
    expect(e.error.message).toMatch(/hostile\/big2 is \d+ bytes \(limit maxDocumentBytes 4096\)/)
    expect(raw.received.at(-1)).toMatchObject({ t: 'error', code: ErrorCode.PEER_LIMIT_EXCEEDED })
    // Logged, naming the peer and the reason.
    const line = logged.find((l) => l.message === 'replication peer error' && l.fields?.peer === 'big')
    expect(line?.fields?.error).toMatch(/limit maxDocumentBytes 4096/)
    expect(await a.mesh.get('hostile', 'big1')).toBeUndefined()
    expect(await a.mesh.get('hostile', 'big2')).toBeUndefined()
  })

  it('drops a link that sends a document, or a tombstone, with too many fields', async () => {
    const wide = Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`f${i}`, i]))
    const raw = await attacker('wide')
    raw.send(chunk(1, [change('wide1'), change('wide2', wide)]))
    const e = await dropped(raw, 'wide')
    expect(e.error.code).toBe(ErrorCode.PEER_LIMIT_EXCEEDED)
    expect(e.error.message).toMatch(/hostile\/wide2 has 21 fields \(limit maxFieldsPerDocument 20\)/)
    expect(await a.mesh.get('hostile', 'wide1')).toBeUndefined()

    // A removed document carries no content, but its field clocks are just as many.
    const clocks = Object.fromEntries(Array.from({ length: 21 }, (_, i) => [`f${i}`, 0]))
    const ghost = await attacker('ghost')
    expect(tombstone.doc).toBeNull()
    ghost.send(chunk(1, [{ ...tombstone, meta: { ...tombstone.meta, f: clocks } }]))
    expect((await dropped(ghost, 'ghost')).error.message).toMatch(/hostile\/ghost has 21 fields/)
    const held = await a.mesh.changesFor({}, 0, 100_000)
    expect(held.changes.some((c) => c.id === 'ghost')).toBe(false)
  })

  it('refuses a flood of 10,000 new collections without growing the store', async () => {
    const before = (await a.mesh.collections()).length
    const raw = await attacker('collector')
    // Two chunks in flight (the window), 5,000 collections each.
    for (let n = 1; n <= 2; n++) {
      raw.send(
        chunk(
          n,
          Array.from({ length: 5000 }, (_, i) => change(`c${i}`, { v: i }, `flood_${n}_${i}`)),
        ),
      )
    }
    const e = await dropped(raw, 'collector')
    expect(e.error.code).toBe(ErrorCode.PEER_LIMIT_EXCEEDED)
    expect(e.error.message).toMatch(
      /5000 new collections \("flood_1_0", …\) would make \d+ \(limit maxCollections 40\)/,
    )
    expect((await a.mesh.collections()).length).toBe(before)

    // Under the limit, new collections are accepted; past it, a chunk is refused whole, whoever sends it.
    const room = LIMITS.maxCollections - (await a.mesh.collections()).length
    const patient = await attacker('patient')
    patient.send(
      chunk(
        1,
        Array.from({ length: room }, (_, i) => change('one', { v: i }, `room_${i}`)),
      ),
    )
    await patient.next((m) => m.t === 'ack' && m.n === 1)
    patient.send(chunk(2, [change('x', { v: 1 }, 'hostile'), change('x', { v: 1 }, 'one_too_many')]))
    expect((await dropped(patient, 'patient')).error.code).toBe(ErrorCode.PEER_LIMIT_EXCEEDED)
    expect(await a.mesh.collections()).toHaveLength(LIMITS.maxCollections)
    expect(await a.mesh.get('hostile', 'x')).toBeUndefined()
    // Local writes are not limited.
    await a.mesh.upsert('local_only', [{ _id: 'l' }])
    expect(await a.mesh.get('local_only', 'l')).toBeDefined()
  })

  it('refuses a site dropped for a limit when it reconnects at once, with the same code', async () => {
    const raw = await attacker('repeat')
    raw.send(chunk(1, [change('repeat', { pad: 'x'.repeat(5000) })]))
    expect((await dropped(raw, 'repeat')).error.code).toBe(ErrorCode.PEER_LIMIT_EXCEEDED)
    const again = await rawPeer(wsTransport({ psk: PSK }), a.url, { site: 'repeat', meshId: 'limits', secret: SECRET })
    await again.closed
    const refusal = again.received.find((m) => m.t === 'error')
    expect(refusal).toMatchObject({ t: 'error', code: ErrorCode.PEER_LIMIT_EXCEEDED })
    expect((refusal as { message: string }).message).toMatch(/refused for another \d+ ms/)
    expect(logged.some((l) => l.message === 'replication peer cooling down' && l.fields?.peer === 'repeat')).toBe(true)
  })

  it('throttles a link over maxChangesPerSecond through its acks, applies everything, and counts it', async () => {
    const raw = await attacker('fast')
    const total = 12
    let n = 0
    const acked = (k: number) => raw.next((m) => m.t === 'ack' && m.n === k)
    // Obeys the window of 2, as a well-behaved but fast sender would: 12 chunks of 100 changes, 3 times the burst.
    for (; n < 2; n++)
      raw.send(
        chunk(
          n + 1,
          Array.from({ length: 100 }, (_, i) => change(`fast${n}_${i}`)),
        ),
      )
    for (let k = 1; k <= total; k++) {
      await acked(k)
      if (n < total) {
        raw.send(
          chunk(
            n + 1,
            Array.from({ length: 100 }, (_, i) => change(`fast${n}_${i}`)),
          ),
        )
        n++
      }
    }
    const link = a.repl.peers().find((p) => p.site === 'fast')!
    expect(link.throttled).toBeGreaterThan(0)
    expect(link.changesReceived).toBe(1200)
    expect(a.repl.stats().throttled).toBeGreaterThanOrEqual(link.throttled)
    const ids = Array.from({ length: total }, (_, c) => Array.from({ length: 100 }, (_, i) => `fast${c}_${i}`)).flat()
    expect(await a.mesh.count({ collection: 'hostile', filter: { _id: { $in: ids } } })).toBe(1200)
    // The honest peer's bursts may be throttled too (the limit is per link, alike for all): find the fast one's line.
    const line = logged.find((l) => l.message === 'replication peer throttled' && l.fields?.peer === 'fast')
    expect(line?.fields).toMatchObject({ peer: 'fast', reason: 'over 400 changes/s' })
    raw.connection.close('done')
  })

  it('keeps serving the honest peer throughout, on the same link', async () => {
    const link = a.repl.peers().find((p) => p.site === 'b')!
    // The same link since the start (it may have been slowed down: it forwards what the others sent, too).
    expect(link).toMatchObject({ state: 'live', lastError: undefined, connectedAt: honestSince })
    const written = honestWrites
    await eventually(async () => (await a.mesh.get('orders', `b${written}`)) !== undefined, 5_000, 'b → a')
    await a.mesh.upsert('orders', [{ _id: 'from-a' }])
    await eventually(async () => (await b.mesh.get('orders', 'from-a')) !== undefined, 5_000, 'a → b')
    expect(written).toBeGreaterThan(0)
    expect(a.repl.stats().rejectedConnections).toBeGreaterThanOrEqual(6)
  })
})
