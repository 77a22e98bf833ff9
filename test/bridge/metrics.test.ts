import { afterEach, describe, expect, it } from 'vitest'
import { resolveSettings } from '../../src/bridge/settings.js'
import type { MeshStore } from '../../src/mesh/mesh-store.js'
import { counter, counterAdapter } from './helpers/counter-model.js'
import { BACKENDS, type NodeOptions, openNode, rows, type TestNode } from './helpers/node.js'
import { type RemoteSite, remoteSite } from './helpers/remote.js'
import { runFixture, tempDirs, waitFor } from './helpers/wait.js'

const dirs = tempDirs()
const closers: (() => Promise<unknown>)[] = []

afterEach(async () => {
  for (const c of closers.splice(0).reverse()) await c()
  dirs.cleanup()
})

const docs = (n: number, changed: (i: number) => boolean = () => false) =>
  Array.from({ length: n }, (_, i) =>
    counterAdapter.toDocument(counter(i, changed(i) ? { cur_rcpt_no: 1000 + i } : {})),
  )

describe.each(BACKENDS)('metrics on the %s mesh', (backend) => {
  async function node(options: NodeOptions = {}): Promise<TestNode<MeshStore>> {
    const n = await openNode(dirs.make('b'), { ...options, backend })
    closers.push(() => n.close())
    return n
  }

  /** Another site writing into `n`'s mesh. */
  async function otherSite(n: TestNode<MeshStore>): Promise<RemoteSite> {
    const s = await remoteSite(backend, n.mesh, dirs.make('site'))
    closers.push(() => s.close())
    return s
  }

  it('count received, skipped-unchanged, applied, pushed and batches, with batch latency, lag and queue depth', async () => {
    const b = await node()
    const first = await otherSite(b)
    await first.upsert('counters', docs(100))
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
    // The builtin mesh delivers the 80 (another site's versions); Ditto delivers only what changed.
    const same = backend === 'builtin' ? 80 : 0
    const second = await otherSite(b)
    await second.upsert(
      'counters',
      docs(100, (i) => i % 5 === 0),
    )
    await waitFor(() => b.sync.metrics().received === 120 + same, { message: 'the second notifications' })
    await b.sync.flush()
    const m2 = b.sync.metrics()
    expect(m2.skippedUnchanged).toBe(same)
    expect(m2.applied).toBe(120)
    expect(m2.byModel.counters).toMatchObject({ received: 120 + same, skippedUnchanged: same, applied: 120 })
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
    // On Ditto each page's changesSince reads the whole collection (a reconcile), so fewer documents.
    const total = backend === 'ditto' ? 500 : 2000
    const b = await node({ settings })
    const src = await otherSite(b)
    // The lock is held until the queue has filled up to its mark, however long that takes here.
    const holder = runFixture('hold-lock', [b.dbFile, 'stdin'])
    await holder.line((l) => l === 'locked')
    let deepest = 0
    const sampler = setInterval(() => {
      deepest = Math.max(deepest, b.sync.metrics().queueDepth)
    }, 1)
    try {
      await src.upsert('counters', docs(total))
      await waitFor(() => deepest >= settings.highWaterMark, { timeout: 20_000, message: 'the queue at its mark' })
      // A while longer at the mark: reading stays held back meanwhile.
      await new Promise((r) => setTimeout(r, 300))
      holder.child.stdin!.end('release\n')
      await waitFor(() => b.sync.metrics().applied === total, { timeout: 30_000, message: 'all rows applied' })
    } finally {
      clearInterval(sampler)
      holder.child.stdin!.end()
    }
    expect(await holder.exited).toBe(0)
    // The queue filled up while the database was held, but never beyond one page over the mark.
    expect(deepest).toBeGreaterThanOrEqual(settings.highWaterMark)
    expect(deepest).toBeLessThanOrEqual(settings.highWaterMark + settings.catchUpPageSize)
    expect(rows(b)).toHaveLength(total)
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
})

describe('metrics settings', () => {
  it('start with no delay unless one is set', () => {
    expect(resolveSettings().startupDelayMs).toBe(0)
    expect(resolveSettings({ startupDelayMs: 3000 }).startupDelayMs).toBe(3000)
    expect(() => resolveSettings({ startupDelayMs: -1 })).toThrow(/startupDelayMs/)
  })
})
