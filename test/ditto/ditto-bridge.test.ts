// The bridge on a Ditto mesh: local rows reach Ditto, and documents written
// into Ditto outside the coordinator (as sync delivers them) reach the rows.
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { createSyncRegistry, type SyncRegistry } from '../../src/bridge/registry.js'
import { type DittoMesh, openDittoStore } from '../../src/ditto/index.js'
import { openSqliteRepository, type SqliteRepository } from '../../src/repository/sqlite-repository.js'
import { COUNTERS_DDL, counter, counterAdapter, counterModel } from '../bridge/helpers/counter-model.js'
import { removeTempDirs, tempDir } from './helpers.js'

const cleanups: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
  removeTempDirs()
})

interface DittoNode {
  db: Database.Database
  mesh: DittoMesh
  registry: SyncRegistry
  repo: SqliteRepository
  close(): Promise<void>
}

async function node(dir = tempDir()): Promise<DittoNode> {
  const file = join(dir, 'app.db')
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.exec(COUNTERS_DDL)
  const mesh = await openDittoStore({ dir: join(dir, 'ditto') })
  const repo = await openSqliteRepository({ file, models: [counterModel] })
  const registry = createSyncRegistry({ mesh, repository: repo, adapters: [counterAdapter], context: { branchId: 1 } })
  let closed: Promise<void> | undefined
  const close = () => {
    closed ??= (async () => {
      await registry.close()
      await repo.close()
      await mesh.close()
      db.close()
    })()
    return closed
  }
  cleanups.push(close)
  await registry.start()
  return { db, mesh, registry, repo, close }
}

const rows = (db: Database.Database) =>
  db.prepare('SELECT * FROM counters ORDER BY id').all() as Record<string, unknown>[]

describe('the sync bridge with Ditto as the mesh', () => {
  it('mirrors local rows into Ditto, and Ditto writes from outside into the rows', async () => {
    const { db, mesh, registry } = await node()
    const insert = db.prepare(
      'INSERT INTO counters (id, branch_id, business_id, receipt_type, tot_rcpt_no, cur_rcpt_no, invc_no, bhf_id, last_touched, created_at) VALUES (@id, @branch_id, @business_id, @receipt_type, @tot_rcpt_no, @cur_rcpt_no, @invc_no, @bhf_id, @last_touched, @created_at)',
    )
    db.transaction(() => {
      for (let i = 0; i < 20; i++) insert.run(counter(i))
    })()
    await waitFor(async () => (await mesh.count({ collection: 'counters' })) === 20)
    expect(await mesh.get('counters', 'c000003')).toMatchObject({ branchId: 1, curRcptNo: 3 })

    // A peer's change, as Ditto sync would apply it: straight into the Ditto store.
    await mesh.ditto.store.execute('UPDATE counters SET curRcptNo = :n WHERE _id = :id', { id: 'c000003', n: 99 })
    await mesh.ditto.store.execute('INSERT INTO counters DOCUMENTS (:d)', {
      d: { ...counterAdapter.toDocument(counter(50)), _id: 'c000050' },
    })
    await waitFor(async () => rows(db).length === 21 && rows(db).find((r) => r.id === 'c000003')?.cur_rcpt_no === 99)
    await registry.coordinator.flush()
    expect(await mesh.get('counters', 'c000003')).toMatchObject({ curRcptNo: 99 })
    expect((await mesh.changesSince(null, { collection: 'counters' })).changed).toHaveLength(21)
  })

  it('mirrors deletes both ways, never echoes, skips other branches, and after a restart applies only what changed', async () => {
    const dir = tempDir()
    const a = await node(dir)
    const insert = a.db.prepare(
      'INSERT INTO counters (id, branch_id, business_id, receipt_type, tot_rcpt_no, cur_rcpt_no, invc_no, bhf_id, last_touched, created_at) VALUES (@id, @branch_id, @business_id, @receipt_type, @tot_rcpt_no, @cur_rcpt_no, @invc_no, @bhf_id, @last_touched, @created_at)',
    )
    a.db.transaction(() => {
      for (let i = 0; i < 10; i++) insert.run(counter(i))
    })()
    await waitFor(async () => (await a.mesh.count({ collection: 'counters' })) === 10)
    a.db.prepare("DELETE FROM counters WHERE id = 'c000002'").run()
    await waitFor(async () => (await a.mesh.get('counters', 'c000002')) === undefined)
    await a.registry.coordinator.flush()
    const pushed = a.registry.coordinator.metrics().pushed
    expect(pushed).toBe(11)

    // Changes as Ditto sync applies them: a removal, another branch's counter, one of ours.
    const dql = a.mesh.ditto.store
    await dql.execute('DELETE FROM counters WHERE _id = :id', { id: 'c000005' })
    await dql.execute('INSERT INTO counters DOCUMENTS (:d)', {
      d: counterAdapter.toDocument(counter(60, { branch_id: 2 })),
    })
    await dql.execute('INSERT INTO counters DOCUMENTS (:d)', { d: { _id: 'bad', branchId: 1, curRcptNo: 'x' } })
    await dql.execute('INSERT INTO counters DOCUMENTS (:d)', { d: counterAdapter.toDocument(counter(61)) })
    await waitFor(() => rows(a.db).some((r) => r.id === 'c000061') && !rows(a.db).some((r) => r.id === 'c000005'))
    await a.registry.coordinator.flush()
    expect(rows(a.db).map((r) => r.id)).toEqual([
      'c000000',
      'c000001',
      'c000003',
      'c000004',
      'c000006',
      'c000007',
      'c000008',
      'c000009',
      'c000061',
    ])
    expect(a.registry.coordinator.metrics().rejectedByReason).toEqual({ 'invalid-document': 1 })
    // Nothing applied from Ditto went back into it.
    expect(a.registry.coordinator.metrics().pushed).toBe(pushed)
    await a.close()

    // While the app is away, a peer's changes arrive in the Ditto directory.
    const away = await openDittoStore({ dir: join(dir, 'ditto') })
    for (const id of ['c000001', 'c000003', 'c000004']) {
      await away.ditto.store.execute('UPDATE counters SET invcNo = :n WHERE _id = :id', { id, n: 500 })
    }
    await away.close()

    const b = await node(dir)
    await b.registry.coordinator.flush()
    const m = b.registry.coordinator.metrics()
    expect(m.applied).toBe(3)
    expect(m.pushed).toBe(0)
    expect(
      rows(b.db)
        .filter((r) => r.invc_no === 500)
        .map((r) => r.id),
    ).toEqual(['c000001', 'c000003', 'c000004'])
  })
})

async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 20))
  }
}
