import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openBuiltinStore } from '../../src/engine/open-builtin-store.js'
import type { BuiltinMesh, RemoteChange } from '../../src/engine/types.js'
import { MemoryNetwork } from '../../src/replication/memory-transport.js'
import { decodeMessage, encodeMessage, type Message } from '../../src/replication/protocol.js'
import { type Replicator, startReplication } from '../../src/replication/replicator.js'
import { removeTempDirs, tempDir } from './helpers.js'
import { rawPeer, syncEmpty } from './raw-peer.js'

const TYPES = ['hello', 'auth', 'sync', 'changes', 'ack', 'error']
/** `npm run fuzz` sets FUZZ_RUNS (10,000): the decoder then gets as many frames. */
const RUNS = Number(process.env.FUZZ_RUNS ?? 0)
let template: RemoteChange

function change(id: string): RemoteChange {
  return { ...template, id, doc: { ...template.doc, _id: id } }
}

const validFrames = (): fc.Arbitrary<string> =>
  fc
    .oneof(
      fc.constant<Message>({ t: 'hello', v: 2, mesh: 'm', site: 's', nonce: 'ab'.repeat(16) }),
      fc.constant<Message>({ t: 'auth', proof: 'cd'.repeat(32) }),
      fc.constant<Message>({ t: 'sync', vv: { s: 3 }, after: 1, window: 4, maxFrame: 65536 }),
      fc.constant<Message>({ t: 'ack', n: 1, cursor: 4 }),
      fc.array(fc.string({ minLength: 1, maxLength: 8 }), { maxLength: 4 }).map(
        (ids): Message => ({
          t: 'changes',
          n: 1,
          changes: ids.map((i) => change(`x${i}`)),
          cursor: 3,
          complete: true,
        }),
      ),
    )
    .map(encodeMessage)

beforeAll(async () => {
  const scratch = await openBuiltinStore({ dir: tempDir(), siteId: 'fuzzer' })
  await scratch.upsert('fuzz', [{ _id: 'template', v: 1, n: [1, 2] }])
  template = (await scratch.changesFor({}, 0, 10)).changes[0]!
  await scratch.close()
})
afterAll(removeTempDirs)

describe('the message decoder', () => {
  it('never throws on random input, and returns a message of a known type or a reason', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), validFrames()), (frame) => {
        const m = decodeMessage(frame)
        if (typeof m !== 'string') expect(TYPES).toContain(m.t)
      }),
      { numRuns: Math.max(2000, RUNS) },
    )
  })

  it('refuses every truncated frame', () => {
    fc.assert(
      fc.property(validFrames(), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (frame, at) => {
        expect(typeof decodeMessage(frame.slice(0, Math.floor(frame.length * at)))).toBe('string')
      }),
      { numRuns: Math.max(1000, RUNS) },
    )
  })
})

describe('a live link fed random, truncated and corrupted frames', () => {
  let mesh: BuiltinMesh
  let repl: Replicator
  const net = new MemoryNetwork()

  beforeAll(async () => {
    mesh = await openBuiltinStore({ dir: tempDir(), siteId: 'target' })
    repl = await startReplication(mesh, {
      meshId: 'fuzz',
      secret: 'fuzz-secret',
      transport: net.transport(),
      listen: { host: 'target', port: 1 },
    })
  })
  afterAll(async () => {
    await repl.close()
    await mesh.close()
  })

  type Frame =
    | { kind: 'good' }
    | { kind: 'truncated'; at: number }
    | { kind: 'corrupt'; which: number }
    | { kind: 'junk'; text: string }
  const arbFrame: fc.Arbitrary<Frame> = fc.oneof(
    { weight: 3, arbitrary: fc.constant<Frame>({ kind: 'good' }) },
    {
      weight: 1,
      arbitrary: fc.double({ min: 0, max: 0.999, noNaN: true }).map((at): Frame => ({ kind: 'truncated', at })),
    },
    { weight: 1, arbitrary: fc.nat(2).map((which): Frame => ({ kind: 'corrupt', which })) },
    { weight: 1, arbitrary: fc.oneof(fc.string(), fc.json()).map((text): Frame => ({ kind: 'junk', text })) },
  )

  let run = 0
  it('applies each chunk whole or not at all, never crashes, and keeps accepting links', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(arbFrame, { minLength: 1, maxLength: 6 }), async (frames) => {
        run++
        const raw = await rawPeer(net.transport(), 'mem://target:1', {
          site: `f${run}`,
          meshId: 'fuzz',
          secret: 'fuzz-secret',
        })
        await syncEmpty(raw)
        const chunks: string[][] = []
        let n = 0
        for (const [i, f] of frames.entries()) {
          const ids = [0, 1, 2].map((k) => `r${run}c${i}d${k}`)
          chunks.push(ids)
          const changes = ids.map(change)
          if (f.kind === 'corrupt')
            changes[f.which] = { ...changes[f.which]!, meta: { ...changes[f.which]!.meta, t: [] } }
          const frame = encodeMessage({ t: 'changes', n: n + 1, changes, cursor: n + 1, complete: false })
          if (f.kind === 'good') {
            n++
            raw.sendRaw(frame)
          } else if (f.kind === 'truncated') raw.sendRaw(frame.slice(0, Math.floor(frame.length * f.at)))
          else if (f.kind === 'corrupt') raw.sendRaw(frame)
          else raw.sendRaw(f.text)
        }
        const allGood = frames.every((f) => f.kind === 'good')
        if (allGood) await raw.next((m) => m.t === 'ack' && m.n === n)
        else await raw.closed
        // Let queued applies finish (or be skipped) before looking.
        await mesh.transaction(async () => {})
        let firstBad = frames.findIndex((f) => f.kind !== 'good')
        if (firstBad < 0) firstBad = frames.length
        for (const [i, ids] of chunks.entries()) {
          const present = await Promise.all(ids.map(async (id) => (await mesh.get('fuzz', id)) !== undefined))
          // Whole or nothing, and nothing at or after the first bad frame.
          expect(present.every((p) => p === present[0])).toBe(true)
          if (i >= firstBad) expect(present[0]).toBe(false)
          if (allGood) expect(present[0]).toBe(true)
        }
        raw.connection.close('done')
      }),
      { numRuns: 60 },
    )
    expect(repl.stats().rejectedConnections).toBeGreaterThan(0)
  })
})
