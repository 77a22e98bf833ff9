import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { resolveSettings } from '../../src/bridge/settings.js'
import { openMesh } from '../../src/engine/open-mesh.js'
import type { BuiltinMesh } from '../../src/engine/types.js'
import type { Document } from '../../src/mesh/document.js'
import { counter, counterAdapter } from './helpers/counter-model.js'
import { MeshLink } from './helpers/mesh-link.js'
import { openNode, rows, type TestNode } from './helpers/node.js'
import { runFixture, tempDirs, waitFor } from './helpers/wait.js'

const dirs = tempDirs()
const closers: (() => Promise<unknown>)[] = []

afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c()
  dirs.cleanup()
})

async function otherSite(docs: readonly Document[]): Promise<BuiltinMesh> {
  const mesh = await openMesh({ dir: join(dirs.make('site'), 'mesh') })
  closers.push(() => mesh.close())
  for (let i = 0; i < docs.length; i += 1000) await mesh.upsert('counters', docs.slice(i, i + 1000))
  return mesh
}

async function node(options: Parameters<typeof openNode>[1] = {}): Promise<TestNode> {
  const n = await openNode(dirs.make('b'), options)
  closers.push(() => n.close())
  return n
}

const docs = (n: number, changed: (i: number) => boolean = () => false) =>
  Array.from({ length: n }, (_, i) =>
    counterAdapter.toDocument(counter(i, changed(i) ? { cur_rcpt_no: 1000 + i } : {})),
  )

describe('metrics', () => {
  it('count received, skipped-unchanged, applied, pushed and batches, with batch latency, lag and queue depth', async () => {
    const b = await node()
    const first = await otherSite(docs(100))
    await new MeshLink([first, b.mesh]).pull(first, b.mesh)
    await waitFor(() => b.sync.metrics().applied === 100, { message: '100 rows applied' })
    const m1 = b.sync.metrics()
    expect(m1).toMatchObject({ received: 100, applied: 100, skippedUnchanged: 0, rejected: 0, errors: 0 })
    expect(m1.batches).toBeGreaterThanOrEqual(1)
    expect(m1.batches).toBeLessThanOrEqual(100)
    const lat = m1.batchLatencyMs
    expect(lat.max).toBeGreaterThan(0)
    expect(lat.mean).toBeGreaterThan(0)
    expect(lat.p50).toBeLessThanOrEqual(lat.p99)
    expect(lat.p99).toBeLessThanOrEqual(lat.max)
    expect(m1.lagMs).toBeGreaterThan(0)
    expect(m1.queueDepth).toBe(0)

    // Another site saves every record again: 80 with the same content, 20 changed.
    const second = await otherSite(docs(100, (i) => i % 5 === 0))
    await new MeshLink([second, b.mesh]).pull(second, b.mesh)
    await waitFor(() => b.sync.metrics().received === 200, { message: '200 notifications' })
    await b.sync.flush()
    const m2 = b.sync.metrics()
    expect(m2.skippedUnchanged).toBe(80)
    expect(m2.applied).toBe(120)
    expect(m2.byModel.counters).toMatchObject({ received: 200, skippedUnchanged: 80, applied: 120 })
    expect(m2.batches).toBeGreaterThan(m1.batches)
    expect(rows(b).filter((r) => Number(r.cur_rcpt_no) >= 1000)).toHaveLength(20)

    // Local edits go out and are counted as pushed.
    b.db.prepare("UPDATE counters SET invc_no = 77 WHERE id IN ('c000001', 'c000002', 'c000003')").run()
    await waitFor(() => b.sync.metrics().pushed === 3, { message: '3 pushed' })
    expect((await b.mesh.get('counters', 'c000002'))?.invcNo).toBe(77)
    expect(b.sync.metrics().applied).toBe(120)
  })

  it('holds the observers back while the apply queue is above its high-water mark', async () => {
    const settings = { highWaterMark: 100, catchUpPageSize: 25, batchSize: 50 }
    const src = await otherSite(docs(2000))
    const b = await node({ settings })
    const holder = runFixture('hold-lock', [b.dbFile, '1500'])
    await holder.line((l) => l === 'locked')
    let deepest = 0
    const sampler = setInterval(() => {
      deepest = Math.max(deepest, b.sync.metrics().queueDepth)
    }, 1)
    try {
      await new MeshLink([src, b.mesh]).pull(src, b.mesh)
      await waitFor(() => b.sync.metrics().applied === 2000, { timeout: 30_000, message: 'all rows applied' })
    } finally {
      clearInterval(sampler)
    }
    expect(await holder.exited).toBe(0)
    // The queue filled up while the database was held, but never beyond one page over the mark.
    expect(deepest).toBeGreaterThanOrEqual(settings.highWaterMark)
    expect(deepest).toBeLessThanOrEqual(settings.highWaterMark + settings.catchUpPageSize)
    expect(rows(b)).toHaveLength(2000)
    expect(b.sync.metrics()).toMatchObject({ errors: 0, rejected: 0, queueDepth: 0 })
    expect(b.sync.metrics().busyRetries).toBeGreaterThan(0)
  }, 40_000)

  it('count and emit failures: a mesh that stops accepting writes', async () => {
    const b = await node()
    const errors: { phase: string; code: unknown }[] = []
    b.sync.on('error', (e) => errors.push({ phase: e.phase, code: (e.error as { code?: unknown }).code }))
    await b.mesh.close()
    b.db
      .prepare(
        "INSERT INTO counters (id, branch_id, business_id, receipt_type, created_at) VALUES ('c1', 1, 1, 'NS', '2026-01-01')",
      )
      .run()
    await waitFor(() => errors.some((e) => e.phase === 'drain'), { message: 'a drain error event' })
    expect(errors.find((e) => e.phase === 'drain')?.code).toBe('STORE_CLOSED')
    expect(b.sync.metrics().errors).toBe(errors.length)
    expect(b.sync.metrics().pushed).toBe(0)
    // The change is kept for a later run, not dropped.
    expect(await b.repo.pendingChanges({ models: ['counters'], limit: 10 })).toHaveLength(1)
  })

  it('start with no delay unless one is set', () => {
    expect(resolveSettings().startupDelayMs).toBe(0)
    expect(resolveSettings({ startupDelayMs: 3000 }).startupDelayMs).toBe(3000)
    expect(() => resolveSettings({ startupDelayMs: -1 })).toThrow(/startupDelayMs/)
  })
})
