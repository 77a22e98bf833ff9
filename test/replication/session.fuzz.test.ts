import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openBuiltinStore } from '../../src/engine/open-builtin-store.js'
import type { BuiltinMesh, RemoteChange } from '../../src/engine/types.js'
import { ErrorCode } from '../../src/errors.js'
import { normaliseDocument } from '../../src/mesh/validate.js'
import { newNonce, proof } from '../../src/replication/auth.js'
import { MemoryNetwork } from '../../src/replication/memory-transport.js'
import { DEFAULT_PEER_LIMITS } from '../../src/replication/peer-limits.js'
import { decodeMessage, encodeMessage, type Message, PROTOCOL_VERSION } from '../../src/replication/protocol.js'
import { type Replicator, startReplication } from '../../src/replication/replicator.js'
import type { Connection, Transport } from '../../src/replication/transport.js'
import { wsTransport } from '../../src/replication/ws-transport.js'
import { mutateFrame, mutations } from './fuzz-frames.js'
import { eventually, removeTempDirs, tempDir } from './helpers.js'

/**
 * Every frame type, and the handshake in every order, fuzzed against a real
 * replicator (real PeerSession, real store) over the in-memory carrier,
 * while an honest peer replicates with it throughout. `FUZZ_RUNS` frames
 * per type (default 1,000; `npm run fuzz` runs 10,000).
 */
const RUNS = Number(process.env.FUZZ_RUNS ?? 1000)
const TIMEOUT = Math.max(60_000, RUNS * 60)
const MESH = 'fuzz'
const SECRET = 'fuzz-session-secret'
const STABLE = new Set<string>([ErrorCode.PROTOCOL_ERROR, ErrorCode.PEER_AUTH_FAILED, ErrorCode.PEER_LIMIT_EXCEEDED])
const LIMITS = { ...DEFAULT_PEER_LIMITS, maxCollections: 20, maxFieldsPerDocument: 50, maxDocumentBytes: 32 * 1024 }

/** The carrier: in-memory by default, `FUZZ_TRANSPORT=ws` for WebSockets on 127.0.0.1. */
const WS = process.env.FUZZ_TRANSPORT === 'ws'
const net = new MemoryNetwork()
const carrier = (): Transport => (WS ? wsTransport({ psk: { meshId: MESH, secrets: [SECRET] } }) : net.transport())
let url = 'mem://target:1'
let target: { mesh: BuiltinMesh; repl: Replicator }
let honest: { mesh: BuiltinMesh; repl: Replicator; since: string; writes: number; timer: NodeJS.Timeout }
/** The codes of the replicator's error events (only the codes: thousands of errors with their stacks weigh). */
const events: string[] = []
let template: RemoteChange
let run = 0

/** A link driven by hand, frame by frame. */
class Link {
  readonly received: Message[] = []
  readonly raw: string[] = []
  /** Frames from the target that are not well-formed messages (there must be none). */
  readonly malformed: string[] = []
  closed: string | undefined
  private waiters: (() => void)[] = []
  readonly nonce = newNonce()

  private constructor(
    readonly connection: Connection,
    readonly site: string,
  ) {
    connection.onClose((reason) => {
      this.closed = reason
      this.wake()
    })
    connection.onMessage((frame) => {
      this.raw.push(frame)
      const m = decodeMessage(frame)
      if (typeof m === 'string') this.malformed.push(frame)
      else this.received.push(m)
      this.wake()
    })
  }

  static async open(site = `f${++run}`): Promise<Link> {
    return new Link(await carrier().dial(url), site)
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w()
  }

  send(frame: string | Message): void {
    this.connection.send(typeof frame === 'string' ? frame : encodeMessage(frame))
  }

  hello(): Message {
    return { t: 'hello', v: PROTOCOL_VERSION, mesh: MESH, site: this.site, nonce: this.nonce }
  }

  /** The right answer to the target's challenge (undefined before its hello). */
  auth(): Message | undefined {
    const h = this.received.find((m) => m.t === 'hello') as Extract<Message, { t: 'hello' }> | undefined
    return h && { t: 'auth', proof: proof(SECRET, MESH, h.nonce, this.site) }
  }

  /** Resolves once a message matches or the link closes; fails if neither happens in time (a stall). */
  async until(pred: (m: Message) => boolean, what: string): Promise<Message | undefined> {
    const deadline = Date.now() + 5_000
    for (;;) {
      const found = this.received.find(pred)
      if (found) return found
      if (this.closed !== undefined) return undefined
      if (Date.now() > deadline) throw new Error(`stalled waiting for ${what}; got ${this.raw.join('\n')}`)
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve)
        setTimeout(resolve, 100)
      })
    }
  }

  /** Lets every frame in flight, and what it sets off in the target, be processed. */
  async settle(): Promise<void> {
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r))
  }

  /**
   * Hello, auth, and a sync saying we hold everything the target holds: it
   * has nothing to send us. `sync` gives the frame sent for that sync.
   */
  async handshake(sync: (m: Message) => Message | string = (m) => m): Promise<void> {
    this.send(this.hello())
    await this.until((m) => m.t === 'hello', 'hello')
    this.send(this.auth()!)
    await this.until((m) => m.t === 'sync', 'sync')
    const vv = await target.mesh.versionVector()
    const after = (await target.mesh.stats()).sequence
    this.send(sync({ t: 'sync', vv, after, window: 4, maxFrame: 16 * 1024 * 1024 }))
  }

  /** Every error the target sent us carries a stable code. */
  checkErrors(): void {
    expect(this.malformed).toEqual([])
    for (const m of this.received) if (m.t === 'error') expect(STABLE, m.code).toContain(m.code)
  }

  /**
   * After a frame the target may refuse: whether it still serves the link
   * (a valid chunk is applied); if not, it must have ended the link.
   */
  async stillServed(): Promise<boolean> {
    await this.settle()
    const served = this.closed === undefined && (await this.probe(1))
    this.checkErrors()
    if (!served) expect(this.closed).toBeDefined()
    return served
  }

  /** Proves the target still serves this link: a valid chunk `n` is applied and acknowledged. */
  async probe(n: number): Promise<boolean> {
    const id = `probe${run}`
    this.send({ t: 'changes', n, changes: [change(id)], cursor: n, complete: false })
    const ack = await this.until((m) => m.t === 'ack' && m.n === n, `the ack of probe chunk ${n}`)
    if (ack) expect(await target.mesh.get('fuzz', id)).toBeDefined()
    return ack !== undefined
  }

  close(): void {
    this.connection.close('done')
  }
}

function change(id: string, fields: Record<string, unknown> = { v: 1 }): RemoteChange {
  return { ...template, id, doc: { _id: id, ...fields } as RemoteChange['doc'] }
}

/** Checks a document the target accepted against what any document must be. */
function assertValidDocument(doc: Record<string, unknown>): void {
  const { fields } = normaliseDocument(doc)
  expect(Object.keys(fields).length).toBeLessThanOrEqual(LIMITS.maxFieldsPerDocument)
  expect(Buffer.byteLength(JSON.stringify(doc))).toBeLessThanOrEqual(LIMITS.maxDocumentBytes)
  expect(Object.getPrototypeOf(doc)).toBe(Object.prototype)
}

beforeAll(async () => {
  const scratch = await openBuiltinStore({ dir: tempDir(), siteId: 'mallory' })
  await scratch.upsert('fuzz', [{ _id: 'template', v: 1 }])
  template = (await scratch.changesFor({}, 0, 10)).changes[0]!
  await scratch.close()

  const mesh = await openBuiltinStore({ dir: tempDir(), siteId: 'target' })
  await mesh.upsert('fuzz', [{ _id: 'seed' }])
  await mesh.upsert('orders', [{ _id: 'seed' }])
  const repl = await startReplication(mesh, {
    meshId: MESH,
    secret: SECRET,
    transport: carrier(),
    listen: WS ? { host: '127.0.0.1', port: 0 } : { host: 'target', port: 1 },
    chunkSize: 20,
    window: 2,
    limits: LIMITS,
  })
  if (WS) url = `ws://127.0.0.1:${repl.port}`
  repl.on('error', (e) => events.push(e.error.code))
  target = { mesh, repl }

  const hMesh = await openBuiltinStore({ dir: tempDir(), siteId: 'honest' })
  const hRepl = await startReplication(hMesh, {
    meshId: MESH,
    secret: SECRET,
    transport: carrier(),
    peers: [url],
  })
  await eventually(() => repl.peers().some((p) => p.site === 'honest' && p.state === 'live'), 10_000, 'honest live')
  honest = {
    mesh: hMesh,
    repl: hRepl,
    since: repl.peers().find((p) => p.site === 'honest')!.connectedAt,
    writes: 0,
    timer: setInterval(() => {
      honest.writes++
      void hMesh.upsert('orders', [{ _id: `h${honest.writes}`, n: honest.writes }])
    }, 25),
  }
})

afterAll(async () => {
  clearInterval(honest.timer)
  await honest.repl.close()
  await target.repl.close()
  await honest.mesh.close()
  await target.mesh.close()
  removeTempDirs()
})

/** The honest peer is still on the link it opened first, and its writes still arrive. */
async function honestStillServed(): Promise<void> {
  const link = target.repl.peers().find((p) => p.site === 'honest')
  expect(link).toMatchObject({ state: 'live', connectedAt: honest.since, lastError: undefined })
  await eventually(() => honest.writes > 0, 5_000, 'a first honest write')
  const last = honest.writes
  try {
    await eventually(async () => (await target.mesh.get('orders', `h${last}`)) !== undefined, 5_000, 'honest write')
  } catch (error) {
    const seen = await honest.mesh.get('orders', `h${last}`)
    throw new Error(
      `${(error as Error).message}: written there: ${seen !== undefined}; honest side ${JSON.stringify(honest.repl.peers())}; target side ${JSON.stringify(target.repl.peers().filter((p) => p.site === 'honest'))}`,
    )
  }
}

const stats = new Map<string, { runs: number; refused: number; accepted: number }>()
function count(type: string, refused: boolean): void {
  const s = stats.get(type) ?? { runs: 0, refused: 0, accepted: 0 }
  s.runs++
  if (refused) s.refused++
  else s.accepted++
  stats.set(type, s)
}

/** Checks `property` on `RUNS` runs, then that the honest peer was served throughout. */
async function fuzz<Ts extends unknown[]>(property: fc.IAsyncProperty<Ts>): Promise<void> {
  await fc.assert(property, { numRuns: RUNS })
  await honestStillServed()
}

afterAll(() => {
  if (process.env.FUZZ_REPORT) console.log(JSON.stringify({ runs: RUNS, stats: Object.fromEntries(stats) }))
})

describe(`${RUNS} hostile frames of each type against a live replicator (${WS ? 'WebSocket' : 'in-memory'} carrier)`, () => {
  it(
    'hello: refused with a stable code, or answered with a challenge only when it is right',
    async () => {
      await fuzz(
        fc.asyncProperty(mutations, async (muts) => {
          const link = await Link.open()
          const frame = mutateFrame(link.hello(), muts)
          link.send(frame)
          await link.until((m) => m.t === 'auth' || m.t === 'error', 'an answer to hello')
          link.checkErrors()
          const answered = link.received.some((m) => m.t === 'auth')
          const decoded = decodeMessage(frame)
          // A challenge is answered only for a well-formed hello of this mesh and protocol, from another site.
          if (answered)
            expect(decoded).toMatchObject({ t: 'hello', v: PROTOCOL_VERSION, mesh: MESH, site: expect.any(String) })
          count('hello', !answered)
          link.close()
        }),
      )
    },
    TIMEOUT,
  )

  it(
    'auth: only the right proof authenticates; anything else is refused with a stable code',
    async () => {
      await fuzz(
        fc.asyncProperty(mutations, async (muts) => {
          const link = await Link.open()
          link.send(link.hello())
          await link.until((m) => m.t === 'hello', 'hello')
          const right = link.auth()!
          const frame = mutateFrame(right, muts)
          link.send(frame)
          await link.until((m) => m.t === 'sync' || m.t === 'error', 'an answer to auth')
          link.checkErrors()
          const synced = link.received.some((m) => m.t === 'sync')
          if (synced) expect(decodeMessage(frame)).toEqual(right)
          count('auth', !synced)
          link.close()
        }),
      )
    },
    TIMEOUT,
  )

  it(
    'sync: a malformed sync is refused, a well-formed one is served, and the link keeps working',
    async () => {
      await fuzz(
        fc.asyncProperty(mutations, async (muts) => {
          const link = await Link.open()
          await link.handshake((sync) => mutateFrame(sync, muts))
          count('sync', !(await link.stillServed()))
          link.close()
        }),
      )
    },
    TIMEOUT,
  )

  it(
    'changes: a chunk is applied whole and valid, or refused whole with a stable code',
    async () => {
      await fuzz(
        fc.asyncProperty(fc.integer({ min: 1, max: 3 }), mutations, async (size, muts) => {
          const link = await Link.open()
          await link.handshake()
          const ids = Array.from({ length: size }, (_, k) => `r${run}d${k}`)
          const chunk = { t: 'changes', n: 1, changes: ids.map((id) => change(id)), cursor: 1, complete: false }
          link.send(mutateFrame(chunk, muts))
          await link.settle()
          const acked = await link.until((m) => m.t === 'ack' || m.t === 'error', 'an answer to the chunk')
          link.checkErrors()
          const applied = acked?.t === 'ack' && acked.n === 1
          if (!applied) {
            // Refused: nothing of it applied, whatever it held.
            for (const id of ids) expect(await target.mesh.get('fuzz', id)).toBeUndefined()
            expect(link.received.at(-1)?.t === 'error' || link.closed !== undefined).toBe(true)
          } else {
            const sent = decodeMessage(mutateFrame(chunk, muts)) as Extract<Message, { t: 'changes' }>
            for (const c of sent.changes) {
              const doc = await target.mesh.get(c.collection, c.id)
              if (doc) assertValidDocument(doc)
            }
            expect(await link.probe(2)).toBe(true)
          }
          count('changes', !applied)
          link.close()
        }),
      )
      expect((await target.mesh.collections()).length).toBeLessThanOrEqual(LIMITS.maxCollections)
    },
    TIMEOUT,
  )

  it(
    'ack: an ack of a chunk never sent is refused; the link otherwise keeps working',
    async () => {
      await fuzz(
        fc.asyncProperty(mutations, async (muts) => {
          const link = await Link.open()
          await link.handshake()
          link.send(mutateFrame({ t: 'ack', n: 1, cursor: 1 }, muts))
          count('ack', !(await link.stillServed()))
          link.close()
        }),
      )
    },
    TIMEOUT,
  )

  it(
    'error: the target ends the link and reports it under a stable code',
    async () => {
      await fuzz(
        fc.asyncProperty(mutations, async (muts) => {
          const link = await Link.open()
          await link.handshake()
          const before = events.length
          link.send(mutateFrame({ t: 'error', code: 'PROTOCOL_ERROR', message: 'go away' }, muts))
          await link.settle()
          await link.until(() => false, 'the link to close')
          expect(link.closed).toBeDefined()
          await eventually(() => events.length > before, 5_000, 'the error event')
          for (const code of events.slice(before)) expect(STABLE).toContain(code)
          count('error', true)
        }),
      )
    },
    TIMEOUT,
  )

  it(
    'the handshake in any order: only hello then the right auth authenticates; every refusal has a stable code',
    async () => {
      const step = fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom('hello', 'auth') },
        {
          weight: 4,
          arbitrary: fc.constantFrom('wrong-auth', 'sync', 'ack', 'changes', 'junk', 'other-hello', 'error'),
        },
        { weight: 1, arbitrary: mutations.map((m) => ({ hello: m })) },
        { weight: 1, arbitrary: mutations.map((m) => ({ auth: m })) },
      )
      await fuzz(
        fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 6 }), async (steps) => {
          const link = await Link.open()
          let helloSent = false
          let rightAuthAfterHello = false
          for (const s of steps) {
            // Let the target's hello arrive, so an auth can answer it.
            await link.settle()
            if (link.closed !== undefined) break
            const auth = link.auth() ?? { t: 'auth', proof: 'ab'.repeat(32) }
            if (s === 'hello') {
              link.send(link.hello())
              helloSent = true
            } else if (s === 'auth') {
              link.send(auth)
              if (helloSent && link.auth()) rightAuthAfterHello = true
            } else if (s === 'wrong-auth') link.send({ t: 'auth', proof: 'cd'.repeat(32) })
            else if (s === 'sync') link.send({ t: 'sync', vv: {}, after: 0, window: 4, maxFrame: 1 << 20 })
            else if (s === 'ack') link.send({ t: 'ack', n: 1, cursor: 1 })
            else if (s === 'changes')
              link.send({ t: 'changes', n: 1, changes: [change(`hs${run}`)], cursor: 1, complete: false })
            else if (s === 'junk') link.send('{"t":')
            else if (s === 'other-hello')
              link.send({
                ...(link.hello() as Extract<Message, { t: 'hello' }>),
                site: 'someone-else',
                nonce: newNonce(),
              })
            else if (s === 'error') link.send({ t: 'error', code: 'X', message: 'y' })
            else if ('hello' in s) {
              const frame = mutateFrame(link.hello(), s.hello)
              const m = decodeMessage(frame)
              if (typeof m !== 'string' && m.t === 'hello' && m.site === link.site && m.mesh === MESH) helloSent = true
              link.send(frame)
            } else {
              const frame = mutateFrame(auth, s.auth)
              if (helloSent && link.auth() && frame === encodeMessage(auth)) rightAuthAfterHello = true
              link.send(frame)
            }
          }
          await link.settle()
          link.checkErrors()
          const synced = link.received.some((m) => m.t === 'sync')
          // Authenticated only by a hello of ours followed by the right proof (a fuzzed one may happen to be right).
          if (synced) expect(rightAuthAfterHello).toBe(true)
          // Nothing from an unauthenticated link is ever applied.
          if (!synced) expect(await target.mesh.get('fuzz', `hs${run}`)).toBeUndefined()
          count('handshake', !synced)
          link.close()
        }),
      )
    },
    TIMEOUT,
  )

  it('stored only valid documents, and still accepts new links', async () => {
    for (const c of await target.mesh.collections()) {
      for (const doc of await target.mesh.find({ collection: c })) assertValidDocument(doc)
    }
    const link = await Link.open()
    await link.handshake()
    expect(await link.probe(1)).toBe(true)
    link.close()
    await honestStillServed()
    expect(target.repl.stats().rejectedConnections).toBeGreaterThan(RUNS)
  })
})
