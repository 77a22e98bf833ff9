import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openBuiltinStore } from '../../src/engine/open-builtin-store.js'
import type { BuiltinMesh, RemoteChange } from '../../src/engine/types.js'
import { ErrorCode } from '../../src/errors.js'
import type { Message } from '../../src/replication/protocol.js'
import { type ReplicationEvents, type Replicator, startReplication } from '../../src/replication/replicator.js'
import { wsTransport } from '../../src/replication/ws-transport.js'
import { eventually, removeTempDirs, tempDir } from './helpers.js'
import { type RawPeer, rawPeer, syncEmpty } from './raw-peer.js'

const SECRET = 'hostile-test-secret'
const MAX_FRAME = 64 * 1024
let a: { mesh: BuiltinMesh; repl: Replicator; url: string }
let b: { mesh: BuiltinMesh; repl: Replicator }
const errors: ReplicationEvents['error'][] = []
let template: RemoteChange

/** A valid change of a document `id` in `hostile`, as another replica would send it. */
function change(id: string): RemoteChange {
  return { ...template, id, doc: { ...template.doc, _id: id } }
}

function chunk(n: number, changes: RemoteChange[]): Message {
  return { t: 'changes', n, changes, cursor: n, complete: false }
}

async function attacker(site: string): Promise<RawPeer> {
  const raw = await rawPeer(
    wsTransport({ maxFrameBytes: 4 * MAX_FRAME, psk: { meshId: 'hostile', secrets: [SECRET] } }),
    a.url,
    {
      site,
      meshId: 'hostile',
      secret: SECRET,
    },
  )
  await syncEmpty(raw)
  return raw
}

beforeAll(async () => {
  const scratch = await openBuiltinStore({ dir: tempDir(), siteId: 'mallory' })
  await scratch.upsert('hostile', [{ _id: 'template', v: 1 }])
  template = (await scratch.changesFor({}, 0, 10)).changes[0]!
  await scratch.close()

  const meshA = await openBuiltinStore({ dir: tempDir(), siteId: 'a' })
  const replA = await startReplication(meshA, {
    meshId: 'hostile',
    secret: SECRET,
    listen: { host: '127.0.0.1', port: 0 },
    window: 2,
    ws: { maxFrameBytes: MAX_FRAME },
  })
  replA.on('error', (e) => errors.push(e))
  a = { mesh: meshA, repl: replA, url: `ws://127.0.0.1:${replA.port}` }
  const meshB = await openBuiltinStore({ dir: tempDir(), siteId: 'b' })
  const replB = await startReplication(meshB, { meshId: 'hostile', secret: SECRET, peers: [a.url] })
  b = { mesh: meshB, repl: replB }
  await eventually(() => a.repl.peers().some((p) => p.site === 'b' && p.state === 'live'), 10_000, 'b live')
})

afterAll(async () => {
  await b.repl.close()
  await a.repl.close()
  await b.mesh.close()
  await a.mesh.close()
  removeTempDirs()
})

async function dropped(raw: RawPeer, reason: RegExp): Promise<void> {
  const before = errors.length
  await raw.closed
  await eventually(() => errors.length > before, 5_000, 'the error event')
  expect(errors.at(-1)!.error.code).toBe(ErrorCode.PROTOCOL_ERROR)
  expect(errors.at(-1)!.error.message).toMatch(reason)
}

describe('hostile input', () => {
  it('drops a link that sends an oversized frame, applying nothing', async () => {
    const raw = await attacker('big')
    raw.send(chunk(1, [change('big1'), { ...change('big2'), doc: { _id: 'big2', pad: 'x'.repeat(2 * MAX_FRAME) } }]))
    await dropped(raw, /Max payload size exceeded|limit/)
    expect(await a.mesh.get('hostile', 'big1')).toBeUndefined()
  })

  it('drops a link that sends a malformed message, and says why', async () => {
    const raw = await attacker('garbled')
    raw.sendRaw('{"t":"changes","n":1,"changes":[')
    await dropped(raw, /malformed message \(not JSON\)/)
    expect(raw.received.at(-1)).toMatchObject({ t: 'error', message: 'malformed message (not JSON)' })
  })

  it('rejects a whole chunk when one of its changes fails validation', async () => {
    const raw = await attacker('invalid')
    const bad = change('inv2')
    raw.send(chunk(1, [change('inv1'), { ...bad, meta: { ...bad.meta, i: 99 } }]))
    await dropped(raw, /rejected changes \(INVALID_CHANGE\)/)
    expect(await a.mesh.get('hostile', 'inv1')).toBeUndefined()
    expect(await a.mesh.get('hostile', 'inv2')).toBeUndefined()
  })

  it('drops a link that floods chunks past the flow-control window', async () => {
    const raw = await attacker('flood')
    for (let n = 1; n <= 20; n++) raw.send(chunk(n, [change(`flood${n}`)]))
    await dropped(raw, /unacknowledged chunks/)
    // The chunk that broke the window, and every one after it, was never applied.
    for (let n = 5; n <= 20; n++) expect(await a.mesh.get('hostile', `flood${n}`)).toBeUndefined()
  })

  it('drops a link that acknowledges chunks it was never sent, or skips a chunk number', async () => {
    const acker = await attacker('acker')
    acker.send({ t: 'ack', n: 9, cursor: 9 })
    await dropped(acker, /ack of chunk 9/)
    const skipper = await attacker('skipper')
    skipper.send(chunk(2, [change('skipped')]))
    await dropped(skipper, /out of order/)
    expect(await a.mesh.get('hostile', 'skipped')).toBeUndefined()
  })

  it('keeps serving the other peers throughout, and counts every dropped link', async () => {
    const link = a.repl.peers().find((p) => p.site === 'b')!
    expect(link).toMatchObject({ state: 'live', lastError: undefined })
    await a.mesh.upsert('orders', [{ _id: 'from-a' }])
    await b.mesh.upsert('orders', [{ _id: 'from-b' }])
    await eventually(async () => (await b.mesh.get('orders', 'from-a')) !== undefined, 5_000, 'a → b')
    await eventually(async () => (await a.mesh.get('orders', 'from-b')) !== undefined, 5_000, 'b → a')
    expect(a.repl.peers().find((p) => p.site === 'b')!.connectedAt).toBe(link.connectedAt)
    expect(a.repl.stats().rejectedConnections).toBe(6)
    expect(await a.mesh.count({ collection: 'hostile' })).toBe(
      await a.mesh.count({ collection: 'hostile', filter: { _id: { $in: ['flood1', 'flood2', 'flood3', 'flood4'] } } }),
    )
  })
})
