import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import type { JsonValue } from '../mesh/document.js'
import { type Collision, mergeCollisions } from './collisions.js'
import {
  applyIncrement,
  applyRemove,
  applyUpsert,
  type DocState,
  decodeState,
  encodeState,
  mergeStates,
  statesEqual,
} from './doc-state.js'
import { openBuiltinStore } from './open-builtin-store.js'
import type { BuiltinMesh, ChangeChunk } from './types.js'

const dirs: string[] = []
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

async function replicas(n: number): Promise<BuiltinMesh[]> {
  const out: BuiltinMesh[] = []
  for (let i = 0; i < n; i++) {
    const dir = mkdtempSync(join(tmpdir(), 'mm-conv-'))
    dirs.push(dir)
    // Site ids in a fixed order make failures reproducible.
    // Recording conflicts keeps what each write replaced: merged and sent like the rest.
    out.push(await openBuiltinStore({ dir, siteId: `site${i}`, recordConflicts: ['docs'] }))
  }
  return out
}

const arbValue: fc.Arbitrary<JsonValue> = fc.oneof(
  fc.integer({ min: -5, max: 5 }),
  fc.constantFrom('a', 'b', '', null, true, false),
  fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 2 }),
)
const ID = fc.constantFrom('x', 'y', 'z')
const FIELD = fc.constantFrom('f', 'g', 'h')

type Op =
  | { kind: 'upsert'; at: number; id: string; fields: Record<string, JsonValue>; replace: boolean }
  | { kind: 'remove'; at: number; id: string }
  | { kind: 'increment'; at: number; id: string; field: string; by: number }
  | { kind: 'sync'; from: number; to: number; limit: number; deliver: 'once' | 'twice' | 'reversed' | 'drop' }

function arbOps(n: number): fc.Arbitrary<Op[]> {
  const site = fc.integer({ min: 0, max: n - 1 })
  return fc.array(
    fc.oneof(
      {
        weight: 4,
        arbitrary: fc.record({
          kind: fc.constant('upsert' as const),
          at: site,
          id: ID,
          fields: fc.dictionary(FIELD, arbValue, { maxKeys: 3 }),
          replace: fc.boolean(),
        }),
      },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('remove' as const), at: site, id: ID }) },
      {
        weight: 2,
        arbitrary: fc.record({
          kind: fc.constant('increment' as const),
          at: site,
          id: ID,
          field: fc.constantFrom('c', 'f'),
          by: fc.integer({ min: -3, max: 3 }),
        }),
      },
      {
        weight: 3,
        arbitrary: fc.record({
          kind: fc.constant('sync' as const),
          from: site,
          to: site,
          limit: fc.integer({ min: 1, max: 4 }),
          deliver: fc.constantFrom('once' as const, 'twice' as const, 'reversed' as const, 'drop' as const),
        }),
      },
    ),
    { maxLength: 40 },
  )
}

/** `to` pulls what it lacks from `from`, chunk by chunk, delivered as told. */
async function pull(from: BuiltinMesh, to: BuiltinMesh, limit: number, deliver: Op['kind'] | string): Promise<void> {
  const vv = await to.versionVector()
  let after = 0
  const chunks: ChangeChunk[] = []
  for (;;) {
    const chunk = await from.changesFor(vv, after, limit)
    chunks.push(chunk)
    after = chunk.cursor
    if (chunk.complete) break
  }
  if (deliver === 'drop') {
    // Lost in transit: nothing is recorded, a later sync sends it again.
    return
  }
  const order = deliver === 'reversed' ? [...chunks].reverse() : chunks
  for (const chunk of order) {
    // Out of order, the version vector cannot be claimed: it would skip what is missing.
    const versionVector = deliver === 'reversed' ? undefined : chunk.versionVector
    const opts = versionVector ? { from: from.siteId, cursor: chunk.cursor, versionVector } : {}
    await to.applyRemote(chunk.changes, opts)
    if (deliver === 'twice') await to.applyRemote(chunk.changes, opts)
  }
}

async function run(stores: BuiltinMesh[], ops: Op[]): Promise<void> {
  for (const op of ops) {
    if (op.kind === 'sync') {
      if (op.from !== op.to) await pull(stores[op.from]!, stores[op.to]!, op.limit, op.deliver)
      continue
    }
    const s = stores[op.at]!
    if (op.kind === 'upsert')
      await s.upsert('docs', [{ _id: op.id, ...op.fields }], { mode: op.replace ? 'replace' : 'merge' })
    else if (op.kind === 'remove') await s.remove('docs', [op.id])
    else {
      try {
        await s.increment('docs', op.id, op.field, op.by)
      } catch (e) {
        if ((e as { code?: string }).code !== 'TYPE_MISMATCH') throw e
      }
    }
  }
}

async function syncAll(stores: BuiltinMesh[]): Promise<void> {
  // Two full rounds of all pairs reach every replica with every change.
  for (let round = 0; round < 2; round++) {
    for (const a of stores) for (const b of stores) if (a !== b) await pull(a, b, 5, 'once')
  }
}

async function everything(from: BuiltinMesh) {
  return (await from.changesFor({}, 0, 10_000)).changes
}

async function dump(s: BuiltinMesh) {
  return { docs: await s.find({ collection: 'docs' }), vv: await s.versionVector() }
}

describe('replicas converge', () => {
  it('for random operations, delivery orders, duplicates and drops on 2-5 replicas', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: 5 }).chain((n) => fc.tuple(fc.constant(n), arbOps(n))),
        async ([n, ops]) => {
          const stores = await replicas(n)
          try {
            await run(stores, ops)
            await syncAll(stores)
            const first = await dump(stores[0]!)
            for (const s of stores.slice(1)) expect(await dump(s)).toEqual(first)
            // Conflicts are recorded once: syncing again adds none. A catch-up from scratch may
            // bring pairs another replica found (versions met in another order), once.
            const conflictCounts = () => Promise.all(stores.map((s) => s.conflictCount()))
            const counts = await conflictCounts()
            await syncAll(stores)
            expect(await conflictCounts()).toEqual(counts)
            const fromScratch = async () => {
              for (const a of stores) for (const b of stores) if (a !== b) await b.applyRemote(await everything(a))
            }
            await fromScratch()
            const caughtUp = await conflictCounts()
            await fromScratch()
            expect(await conflictCounts()).toEqual(caughtUp)
            for (const s of stores) {
              for (const c of await s.conflicts()) expect(c.winner.clock > c.loser.clock).toBe(true)
            }
            // Nothing more to send anywhere once converged.
            for (const a of stores) {
              for (const b of stores) {
                if (a !== b) expect((await a.changesFor(await b.versionVector(), 0, 100)).changes).toEqual([])
              }
            }
          } finally {
            for (const s of stores) await s.close()
          }
        },
      ),
      { numRuns: 80 },
    )
  })

  it('counters sum every replica’s increments exactly', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: 5 }).chain((n) =>
          fc.tuple(
            fc.constant(n),
            fc.array(fc.tuple(fc.integer({ min: 0, max: n - 1 }), fc.integer({ min: -50, max: 50 })), {
              maxLength: 30,
            }),
            fc.array(fc.tuple(fc.integer({ min: 0, max: n - 1 }), fc.integer({ min: 0, max: n - 1 })), {
              maxLength: 10,
            }),
          ),
        ),
        async ([n, increments, syncs]) => {
          const stores = await replicas(n)
          try {
            await stores[0]!.upsert('stock', [{ _id: 'sku', qty: 10 }])
            await syncAll(stores)
            let expected = 10
            for (const [i, [at, by]] of increments.entries()) {
              await stores[at]!.increment('stock', 'sku', 'qty', by)
              expected += by
              const s = syncs[i % Math.max(1, syncs.length)]
              if (s && s[0] !== s[1]) await pull(stores[s[0]]!, stores[s[1]]!, 2, 'once')
            }
            await syncAll(stores)
            for (const s of stores) expect(await s.get('stock', 'sku')).toEqual({ _id: 'sku', qty: expected })
          } finally {
            for (const s of stores) await s.close()
          }
        },
      ),
      { numRuns: 40 },
    )
  })

  it('two tills selling one item each from stock 10 leave 8', async () => {
    const [a, b] = await replicas(2)
    await a!.upsert('stock', [{ _id: 'tea', qty: 10 }])
    await syncAll([a!, b!])
    await a!.increment('stock', 'tea', 'qty', -1)
    await b!.increment('stock', 'tea', 'qty', -1)
    await syncAll([a!, b!])
    expect(await a!.get('stock', 'tea')).toEqual({ _id: 'tea', qty: 8 })
    expect(await b!.get('stock', 'tea')).toEqual({ _id: 'tea', qty: 8 })
    await a!.close()
    await b!.close()
  })
})

const clockAt = (wall: number, site: string) => `${wall.toString(36).padStart(9, '0')}0000${site}`
// Collisions some replica may have found, one pair found twice with different contents.
const COLLISIONS: Collision[] = [
  { winner: clockAt(9, 's2'), loser: clockAt(5, 's1'), winnerContent: { f: 1 }, loserContent: { f: 2 } },
  { winner: clockAt(9, 's2'), loser: clockAt(5, 's1'), winnerContent: { f: 1 }, loserContent: { g: 2 } },
  { winner: clockAt(20, 's3'), loser: clockAt(9, 's2'), winnerContent: {}, loserContent: { h: 'a' } },
  { winner: clockAt(31, 's1'), loser: clockAt(30, 's3'), winnerContent: { f: true }, loserContent: {} },
]

// Random document states built from operations at random sites and clocks.
const arbState: fc.Arbitrary<DocState> = fc
  .array(
    fc.record({
      op: fc.constantFrom('upsert', 'replace', 'remove', 'increment'),
      site: fc.constantFrom('s1', 's2', 's3'),
      wall: fc.integer({ min: 1, max: 30 }),
      fields: fc.dictionary(FIELD, arbValue, { maxKeys: 2 }),
      by: fc.integer({ min: -3, max: 3 }),
      track: fc.boolean(),
    }),
    { minLength: 1, maxLength: 6 },
  )
  .chain((steps) => fc.tuple(fc.constant(steps), fc.subarray(COLLISIONS)))
  .map(([steps, collisions]) => {
    let s: DocState | undefined
    steps.forEach((st, seq) => {
      const stamp = { site: st.site, clock: `${st.wall.toString(36).padStart(9, '0')}0000${st.site}`, seq: seq + 1 }
      if (s !== undefined && stamp.clock <= s.written) stamp.clock = bump(s.written, st.site)
      if (st.op === 'remove') s = applyRemove(s, stamp) ?? s
      else if (st.op === 'increment') {
        try {
          s = applyIncrement(s, 'c', st.by, stamp, { collection: 'c', id: 'x' }).state
        } catch {
          // A non-number counter field: skip the step.
        }
      } else s = applyUpsert(s, st.fields, st.op === 'replace', stamp, false, st.track) ?? s
    })
    const out = s ?? (applyUpsert(undefined, {}, false, { site: 's1', clock: '0000000010000s1', seq: 1 }) as DocState)
    // Collisions as a state holds them: merged, and none a removal made history.
    const kept = mergeCollisions(collisions, undefined).filter(
      (c) => out.removed === undefined || c.winner > out.removed,
    )
    if (kept.length > 0) out.collisions = kept
    return out
  })

function bump(clock: string, site: string): string {
  const wall = Number.parseInt(clock.slice(0, 9), 36)
  const counter = Number.parseInt(clock.slice(9, 13), 36) + 1
  return `${wall.toString(36).padStart(9, '0')}${counter.toString(36).padStart(4, '0')}${site}`
}

describe('merge of document states', () => {
  it('is commutative, associative and idempotent', () => {
    fc.assert(
      fc.property(arbState, arbState, arbState, (a, b, c) => {
        expect(statesEqual(mergeStates(a, b), mergeStates(b, a))).toBe(true)
        expect(statesEqual(mergeStates(mergeStates(a, b), c), mergeStates(a, mergeStates(b, c)))).toBe(true)
        expect(statesEqual(mergeStates(a, a), a)).toBe(true)
        expect(statesEqual(mergeStates(mergeStates(a, b), b), mergeStates(a, b))).toBe(true)
      }),
      { numRuns: 500 },
    )
  })

  it('survives encoding, merge metadata included', () => {
    fc.assert(
      fc.property(arbState, arbState, (a, b) => {
        for (const s of [a, mergeStates(a, b)]) {
          const { doc, meta } = encodeState('x', s)
          expect(statesEqual(decodeState(JSON.parse(JSON.stringify(doc)), JSON.parse(JSON.stringify(meta))), s)).toBe(
            true,
          )
        }
      }),
      { numRuns: 300 },
    )
  })
})
