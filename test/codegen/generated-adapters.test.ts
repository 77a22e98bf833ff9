// The committed examples/pos adapters (kept current by generate.test.ts) held
// to the adapter acceptance suite, and booted through the registry.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import type { CounterRow } from '../../examples/pos/counter.sync-adapter.g.js'
import { createSyncAdapters, syncAdapters, syncModels } from '../../examples/pos/sync-adapters.g.js'
import type { SyncAdapter } from '../../src/bridge/adapter.js'
import { runAdapterAcceptance } from '../../src/bridge/adapter-acceptance.js'
import { createSyncRegistry } from '../../src/bridge/registry.js'
import { openBuiltinStore } from '../../src/engine/open-builtin-store.js'
import type { Document } from '../../src/mesh/document.js'
import type { Row } from '../../src/repository/repository.js'
import { openSqliteRepository } from '../../src/repository/sqlite-repository.js'

const dirs: string[] = []
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), 'mm-generated-'))
  dirs.push(d)
  return d
}

/** A repository whose tables are created from the generated model definitions. */
const repository = () => openSqliteRepository({ file: join(tempDir(), 'app.db'), models: [...syncModels] })

function adapter<R extends Row = Row>(model: string): SyncAdapter<R> {
  const a = syncAdapters.find((x) => x.model === model)
  if (!a) throw new Error(`no generated adapter for ${model}`)
  return a as unknown as SyncAdapter<R>
}

const counter = (i: number, over: Partial<CounterRow> = {}): CounterRow => ({
  id: `c${i}`,
  branch_id: 1,
  business_id: 9,
  receipt_type: 'NS',
  tot_rcpt_no: 10 + i,
  cur_rcpt_no: i,
  invc_no: 3,
  bhf_id: '00',
  last_touched: null,
  created_at: '2026-01-02T03:04:05.000Z',
  ...over,
})
const counterDoc = adapter<CounterRow>('counters').toDocument(counter(1))

runAdapterAcceptance('generated Counter', () => ({
  adapter: adapter<CounterRow>('counters'),
  records: [counter(1), counter(2, { receipt_type: 'TS', last_touched: '2026-02-01T00:00:00.000Z' })],
  context: { branchId: 1 },
  malformed: [
    { _id: 'm1' },
    { ...counterDoc, _id: 'm2', branchId: 'one' },
    { ...counterDoc, _id: 'm3', totRcptNo: 1.5 },
    { ...counterDoc, _id: 'm4', receiptType: 'XX' },
    { ...counterDoc, _id: 'm5', createdAt: 'yesterday' },
  ],
  outOfScope: [
    { ...counterDoc, _id: 'o1', branchId: 2 },
    { _id: 'o2', ...Object.fromEntries(Object.entries(counter(5, { branch_id: 2 })).filter(([k]) => k !== 'id')) },
  ],
  aliases: [
    {
      doc: { _id: 'c1', ...Object.fromEntries(Object.entries(counter(1)).filter(([k]) => k !== 'id')) } as Document,
      record: counter(1),
    },
  ],
  repository,
}))

runAdapterAcceptance('generated Product (counter field, array)', () => ({
  adapter: adapter('products'),
  records: [
    { id: 'p1', branch_id: 1, name: 'Tea', price: 250, tags: ['hot'], stock: 4 },
    { id: 'p2', branch_id: 1, name: 'Milk', price: 120, tags: [], stock: 0 },
  ],
  context: { branchId: 1 },
  malformed: [{ _id: 'm1', branchId: 1, name: 'x', price: 1, tags: 'hot', stock: 1 }],
  outOfScope: [{ _id: 'o1', branchId: 3, name: 'x', price: 1, tags: [], stock: 1 }],
  repository,
}))

runAdapterAcceptance('generated Order (enum, optional, nullable object, date)', () => ({
  adapter: adapter('orders'),
  records: [
    {
      id: 'o1',
      branch_id: 1,
      status: 'paid',
      total: 1250,
      note: null,
      customer: { name: 'Ana' },
      created_at: '2026-01-01T00:00:00.000Z',
    },
    {
      id: 'o2',
      branch_id: 1,
      status: 'open',
      total: 0,
      note: 'table 4',
      customer: null,
      created_at: '2026-01-01T10:00:00.000Z',
    },
  ],
  context: { branchId: 1 },
  malformed: [{ _id: 'm1', branchId: 1, status: 'lost', total: 1, customer: null, createdAt: '2026-01-01T00:00:00Z' }],
  outOfScope: [{ _id: 'x', branchId: 2, status: 'open', total: 1, customer: null, createdAt: '2026-01-01T00:00:00Z' }],
  repository,
}))

runAdapterAcceptance('generated Branch (unscoped, boolean)', () => ({
  adapter: adapter('branches'),
  records: [
    { id: 'b1', name: 'Main', active: true },
    { id: 'b2', name: 'Harbour', active: false },
  ],
  malformed: [{ _id: 'm1', active: true }],
  repository,
}))

describe('generated registry', () => {
  it('boots through registerDefaults: seeds existing rows, applies only its own branch, honours the context hook', async () => {
    const dir = tempDir()
    const repo = await openSqliteRepository({ file: join(dir, 'app.db'), models: [...syncModels] })
    const mesh = await openBuiltinStore({ dir: join(dir, 'mesh') })
    try {
      // Rows the app wrote before sync existed.
      await repo.upsert('counters', [counter(1), counter(2)])
      await repo.upsert('branches', [{ id: 'b1', name: 'Main', active: true }])
      // The test hook fixes the branch, whatever the app's context says.
      const registry = createSyncRegistry({ mesh, repository: repo, context: { branchId: 2 } })
      const list = createSyncAdapters({ context: { branchId: 1 } })
      registry.registerDefaults(list)
      registry.registerDefaults(list)
      const report = await registry.start()
      expect(report.seeded.counters).toMatchObject({ sent: 2 })
      expect(report.seeded.branches).toMatchObject({ sent: 1 })
      expect(await mesh.get('counters', 'c1')).toMatchObject({
        branchId: 1,
        curRcptNo: 1,
        createdAt: counterDoc.createdAt,
      })
      expect(
        registry.coordinator
          .adapters()
          .map((a) => a.model)
          .sort(),
      ).toEqual(syncModels.map((m) => m.name).sort())

      // Remote documents: one of branch 1 (in scope), one of branch 2 (never applied here).
      const gen = adapter<CounterRow>('counters')
      await mesh.upsert('counters', [gen.toDocument(counter(3)), gen.toDocument(counter(4, { branch_id: 2 }))])
      const deadline = Date.now() + 10_000
      while ((await repo.get('counters', 'c3')) === undefined && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 10))
      await registry.coordinator.flush()
      expect(await repo.get('counters', 'c3')).toEqual(counter(3))
      expect(await repo.get('counters', 'c4')).toBeUndefined()
      expect(await mesh.get('counters', 'c4')).toMatchObject({ branchId: 2 })
      await registry.close()
    } finally {
      await repo.close()
      await mesh.close()
    }
  })
})

describe('exact values through a generated adapter', () => {
  it('keeps an integer beyond 2^53 whole, from one repository through a document to another', async () => {
    const a = adapter<CounterRow>('counters')
    await using from = await repository()
    await using to = await repository()
    const big = { $int: '9007199254740993' }
    await from.upsert('counters', [{ ...counter(1), tot_rcpt_no: big } as unknown as CounterRow])
    const doc = a.toDocument((await from.get('counters', 'c1')) as CounterRow)
    expect(doc.totRcptNo).toEqual(big)
    const back = a.fromDocument(doc)
    expect(back).not.toBeNull()
    await to.upsert('counters', [back!])
    expect((await to.get('counters', 'c1'))?.tot_rcpt_no).toEqual(big)
    // A fraction is still refused where an integer is declared.
    expect(() => a.fromDocument({ ...doc, totRcptNo: { $real: 1.5 } })).toThrow()
  })
})
