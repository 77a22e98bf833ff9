import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { openBuiltinStore } from '../../src/engine/open-builtin-store.js'
import type { BuiltinMesh } from '../../src/engine/types.js'
import { MemoryNetwork } from '../../src/replication/memory-transport.js'
import { type Replicator, startReplication } from '../../src/replication/replicator.js'
import { converged, dump, removeTempDirs, tempDir } from './helpers.js'

afterEach(removeTempDirs)

type Op =
  | { kind: 'upsert'; at: number; id: string; field: string; value: number | string | null }
  | { kind: 'remove'; at: number; id: string }
  | { kind: 'increment'; at: number; by: number }
  | { kind: 'cut' }
  | { kind: 'pause'; ms: number }

const arbOps = (n: number): fc.Arbitrary<Op[]> =>
  fc.array(
    fc.oneof(
      {
        weight: 5,
        arbitrary: fc.record({
          kind: fc.constant('upsert' as const),
          at: fc.integer({ min: 0, max: n - 1 }),
          id: fc.constantFrom('a', 'b', 'c', 'd'),
          field: fc.constantFrom('x', 'y'),
          value: fc.oneof(fc.integer({ min: 0, max: 9 }), fc.constantFrom('s', null)),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant('remove' as const),
          at: fc.integer({ min: 0, max: n - 1 }),
          id: fc.constantFrom('a', 'b', 'c', 'd'),
        }),
      },
      {
        weight: 2,
        arbitrary: fc.record({
          kind: fc.constant('increment' as const),
          at: fc.integer({ min: 0, max: n - 1 }),
          by: fc.integer({ min: -3, max: 3 }),
        }),
      },
      { weight: 1, arbitrary: fc.constant({ kind: 'cut' as const }) },
      { weight: 1, arbitrary: fc.record({ kind: fc.constant('pause' as const), ms: fc.integer({ min: 0, max: 15 }) }) },
    ),
    { maxLength: 30 },
  )

describe('replication over an unreliable in-memory network', () => {
  it('converges for random writes, latency, reordering, duplication and disconnects, in a chain or a ring', async () => {
    // The faults must actually happen, or the property says nothing about them.
    const seen = { duplicates: 0, rejected: 0 }
    await fc.assert(
      fc.asyncProperty(
        fc
          .integer({ min: 2, max: 3 })
          .chain((n) =>
            fc.tuple(
              fc.constant(n),
              fc.constantFrom('chain' as const, 'ring' as const),
              arbOps(n),
              fc.integer({ min: 0, max: 2 ** 31 - 1 }),
              fc.constantFrom(0, 0.02, 0.1),
            ),
          ),
        async ([n, topology, ops, seed, faultRate]) => {
          let rng = seed
          const random = () => {
            rng = (rng * 1103515245 + 12345) % 2 ** 31
            return rng / 2 ** 31
          }
          const net = new MemoryNetwork({
            latencyMs: () => Math.floor(random() * 4),
            reorder: () => random() < faultRate,
            duplicate: () => random() < faultRate,
          })
          const meshes: BuiltinMesh[] = []
          const reps: Replicator[] = []
          try {
            for (let i = 0; i < n; i++) {
              const mesh = await openBuiltinStore({ dir: tempDir(), siteId: `site${i}` })
              meshes.push(mesh)
              reps.push(
                await startReplication(mesh, {
                  meshId: 'prop',
                  secret: 'property-secret',
                  transport: net.transport(),
                  listen: { host: `h${i}`, port: 1 },
                  // Each dials the next one (in a ring of three, the last dials the first):
                  // changes must be forwarded, and in a ring never echoed forever.
                  peers: i < n - 1 || (topology === 'ring' && n > 2) ? [`mem://h${(i + 1) % n}:1`] : [],
                  reconnect: { minMs: 5, maxMs: 20 },
                  chunkSize: 3,
                  window: 2,
                }),
              )
            }
            let expectedQty = 0
            for (const op of ops) {
              if (op.kind === 'upsert') await meshes[op.at]!.upsert('docs', [{ _id: op.id, [op.field]: op.value }])
              else if (op.kind === 'remove') await meshes[op.at]!.remove('docs', [op.id])
              else if (op.kind === 'increment') {
                await meshes[op.at]!.increment('stock', 'tea', 'qty', op.by)
                expectedQty += op.by
              } else if (op.kind === 'cut') net.cut()
              else await new Promise((r) => setTimeout(r, op.ms))
            }
            // Documents, tombstones, merge metadata and version vectors all equal.
            await converged(meshes, 10_000)
            const qty = (await meshes[0]!.get('stock', 'tea'))?.qty
            if (ops.some((o) => o.kind === 'increment')) expect(qty).toBe(expectedQty)
            for (const m of meshes) expect(await dump(m)).toEqual(await dump(meshes[0]!))
          } finally {
            for (const r of reps) {
              seen.duplicates += r.stats().duplicates
              seen.rejected += r.stats().rejectedConnections
            }
            for (const r of reps) await r.close()
            for (const m of meshes) await m.close()
          }
        },
      ),
      { numRuns: Number(process.env.PROP_RUNS ?? 120) },
    )
    expect(seen.duplicates).toBeGreaterThan(0)
    expect(seen.rejected).toBeGreaterThan(0)
  }, 60_000)
})
