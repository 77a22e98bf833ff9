import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { Outcome, type RemoteBatchResult, type RemoteWrite, type Repository, type Row } from './repository.js'
import { openSqliteRepository } from './sqlite-repository.js'

const dir = mkdtempSync(join(tmpdir(), 'mm-parked-removals-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

// Sale lines reference their sale through an unindexed column, as in many apps' schemas;
// `note` (not mirrored) references `customer`.
const DDL = `
PRAGMA foreign_keys = ON;
CREATE TABLE sale (id TEXT PRIMARY KEY, total INTEGER NOT NULL);
CREATE TABLE sale_line (id TEXT PRIMARY KEY, sale_id TEXT NOT NULL REFERENCES sale (id), qty INTEGER NOT NULL);
CREATE TABLE customer (id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE note (id TEXT PRIMARY KEY, customer_id TEXT REFERENCES customer (id));
`
const MODELS = ['sale', 'sale_line', 'customer']

let file = ''
let n = 0
let repo: Repository | undefined

afterEach(async () => {
  await repo?.close()
  repo = undefined
})

async function open(): Promise<Repository> {
  file = join(dir, `r${n++}.db`)
  const app = new Database(file)
  app.exec(DDL)
  app.close()
  repo = await openSqliteRepository({ file, models: MODELS.map((name) => ({ name })) })
  return repo
}

function apply(r: Repository, model: string, writes: { id: string; row: Row | null }[]): Promise<RemoteBatchResult> {
  const ws: RemoteWrite[] = writes.map((w) => ({ ...w, hash: 'h', doc: null }))
  return r.applyRemoteBatch!({ groups: [{ model, writes: ws, hold: [] }], checkpoints: [] })
}

const SALES = 40

/** Sales s0..s39 with one line each (l0..l39), then the removals of every sale, before their lines'. */
async function parkedSales(r: Repository): Promise<void> {
  const ids = Array.from({ length: SALES }, (_, i) => i)
  await apply(
    r,
    'sale',
    ids.map((i) => ({ id: `s${i}`, row: { id: `s${i}`, total: i } })),
  )
  await apply(
    r,
    'sale_line',
    ids.map((i) => ({ id: `l${i}`, row: { id: `l${i}`, sale_id: `s${i}`, qty: 1 } })),
  )
  await apply(
    r,
    'sale',
    ids.map((i) => ({ id: `s${i}`, row: null })),
  )
}

describe('parked removals', () => {
  it('name the key the rows still referencing them hold', async () => {
    const r = await open()
    await parkedSales(r)
    expect(await r.parkedCounts()).toEqual({ parked: SALES, refused: 0 })
    const kept = await r.parked({ model: 'sale', limit: 100 })
    expect(kept.find((k) => k.id === 's7')).toMatchObject({
      op: 'delete',
      state: 'parked',
      waitsFor: 'rows referencing sale(id)',
      waitsKey: JSON.stringify(['s7']),
    })
  })

  it('are found before the batch is written, which then goes whole, not record by record', async () => {
    const r = await open()
    await apply(r, 'sale', [
      { id: 'a', row: { id: 'a', total: 1 } },
      { id: 'b', row: { id: 'b', total: 2 } },
    ])
    await apply(r, 'sale_line', [{ id: 'la', row: { id: 'la', sale_id: 'a', qty: 1 } }])
    const out = await apply(r, 'sale', [
      { id: 'a', row: null },
      { id: 'b', row: null },
    ])
    // Written record by record, the removal that went would read `changed`.
    expect(out.groups[0]!.outcomes).toEqual([Outcome.parked, Outcome.written])
    expect(await r.count('sale')).toBe(1)
    const kept = await r.parked({ model: 'sale', limit: 10 })
    expect(kept).toMatchObject([{ id: 'a', op: 'delete', waitsFor: 'rows referencing sale(id)', waitsKey: '["a"]' }])
    // Its line goes: it is tried again, and goes.
    const freed = await apply(r, 'sale_line', [{ id: 'la', row: null }])
    expect([...freed.unblocked]).toEqual([['sale', ['a']]])
    expect((await apply(r, 'sale', [{ id: 'a', row: null }])).groups[0]!.outcomes).toEqual([Outcome.written])
    expect(await r.count('sale')).toBe(0)
  })

  it('are tried again only when a row referencing them goes, not after every delete', async () => {
    const r = await open()
    await parkedSales(r)
    // A line of sale 7 goes: the removal of sale 7, and only it, is to be tried again.
    const freed = await apply(r, 'sale_line', [{ id: 'l7', row: null }])
    expect([...freed.unblocked]).toEqual([['sale', ['s7']]])
    expect((await apply(r, 'sale', [{ id: 's7', row: null }])).groups[0]!.outcomes).toEqual([Outcome.written])
    expect(await r.count('sale')).toBe(SALES - 1)
    expect(await r.parkedCounts()).toEqual({ parked: SALES - 1, refused: 0 })
    // A delete that frees nothing (a customer nobody references) tries none of them.
    await apply(r, 'customer', [{ id: 'c1', row: { id: 'c1', name: 'Ann' } }])
    const unrelated = await apply(r, 'customer', [{ id: 'c1', row: null }])
    expect(unrelated.unblocked.size).toBe(0)
  })

  it('are found from rows the app deleted itself, as they were', async () => {
    const r = await open()
    await parkedSales(r)
    const out = await r.unblockedBy!('sale_line', [], [{ id: 'l3', sale_id: 's3', qty: 1 }])
    expect([...out]).toEqual([['sale', ['s3']]])
    expect((await r.unblockedBy!('sale_line', [], [{ id: 'l4', sale_id: null, qty: 1 }])).size).toBe(0)
  })

  it('of a row a table not mirrored references are tried after any delete', async () => {
    const r = await open()
    await apply(r, 'customer', [{ id: 'c1', row: { id: 'c1', name: 'Ann' } }])
    const app = new Database(file)
    app.prepare("INSERT INTO note (id, customer_id) VALUES ('n1', 'c1')").run()
    app.close()
    await apply(r, 'customer', [{ id: 'c1', row: null }])
    const [kept] = await r.parked({ model: 'customer', limit: 5 })
    expect(kept).toMatchObject({ id: 'c1', op: 'delete', waitsFor: null })
    // Its blocker's going is not seen here: any delete that went through tries it again.
    await apply(r, 'sale', [{ id: 'x', row: { id: 'x', total: 1 } }])
    expect([...(await apply(r, 'sale', [{ id: 'x', row: null }])).unblocked]).toEqual([['customer', ['c1']]])
  })
})
