import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { Direction } from '../../src/bridge/adapter.js'
import { createSyncCoordinator, type SyncCoordinator } from '../../src/bridge/coordinator.js'
import type { MeshStore } from '../../src/mesh/mesh-store.js'
import type { Repository } from '../../src/repository/repository.js'
import { openSqliteRepository, type SqliteRepository } from '../../src/repository/sqlite-repository.js'
import { COUNTERS_DDL, counter, counterAdapter, counterModel } from './helpers/counter-model.js'
import { BACKENDS, countingMesh, type MeshBackend, type MeshWriteCount, openTestMesh } from './helpers/node.js'
import { tempDirs, waitFor } from './helpers/wait.js'

const dirs = tempDirs()
const cleanup: (() => unknown)[] = []

afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
  dirs.cleanup()
})

/** A repository without change capture (an ORM, another database): the app notifies its writes. */
function withoutCapture(repo: Repository): Repository {
  return new Proxy(repo, {
    get(target, prop) {
      if (prop === 'capturesChanges') return false
      const v = Reflect.get(target, prop, target)
      return typeof v === 'function' ? v.bind(target) : v
    },
  })
}

async function device(
  backend: MeshBackend,
  adapter = counterAdapter,
): Promise<{
  mesh: MeshStore
  repo: SqliteRepository
  sync: SyncCoordinator
  writes: MeshWriteCount
}> {
  const dir = dirs.make('n')
  const file = join(dir, 'app.db')
  const db = new Database(file)
  db.exec(COUNTERS_DDL)
  db.close()
  const mesh = await openTestMesh(backend, join(dir, 'mesh'), [adapter])
  const repo = await openSqliteRepository({ file, models: [counterModel] })
  const writes: MeshWriteCount = { changed: 0, unchanged: 0 }
  const sync = createSyncCoordinator({
    mesh: countingMesh(mesh, writes),
    repository: withoutCapture(repo),
    adapters: [adapter],
    context: { branchId: 1 },
  })
  cleanup.push(
    () => mesh.close(),
    () => repo.close(),
    () => sync.close(),
  )
  await sync.start()
  return { mesh, repo, sync, writes }
}

describe.each(BACKENDS)('notifyLocalUpsert / notifyLocalDelete on the %s mesh', (backend) => {
  it('sends notified writes, recognises echoes by content, and never drops a racing local edit', async () => {
    const d = await device(backend)
    expect(d.repo.isCapturing('counters')).toBe(false)
    const row = counter(1)
    await d.repo.upsert('counters', [row])
    expect(await d.sync.notifyLocalUpsert('counters', row)).toEqual({ sent: true })
    expect(await d.mesh.get('counters', row.id)).toMatchObject({ curRcptNo: 1 })
    expect(await d.sync.notifyLocalUpsert('counters', row)).toEqual({ sent: false, reason: 'unchanged' })
    expect(d.writes.changed).toBe(1)

    // A remote edit lands; the app's repository hook re-notifies the row as applied: an echo.
    await d.mesh.upsert('counters', [{ _id: row.id, curRcptNo: 50 }])
    await waitFor(async () => (await d.repo.get('counters', row.id))?.cur_rcpt_no === 50)
    const applied = (await d.repo.get('counters', row.id))!
    // Counted from here: the mesh may also deliver the bridge's own write back to it, an echo too.
    const echoes = d.sync.metrics().echoSuppressed
    expect(await d.sync.notifyLocalUpsert('counters', applied)).toEqual({ sent: false, reason: 'echo' })
    expect(d.sync.metrics().echoSuppressed).toBe(echoes + 1)
    expect(d.writes.changed).toBe(1)

    // The same document id, but content the mesh has not seen: a genuine edit racing the remote one.
    await d.mesh.upsert('counters', [{ _id: row.id, curRcptNo: 60 }])
    const racing = { ...applied, cur_rcpt_no: 51, invc_no: 9 }
    await d.repo.upsert('counters', [racing])
    expect(await d.sync.notifyLocalUpsert('counters', racing)).toEqual({ sent: true })
    expect(await d.mesh.get('counters', row.id)).toMatchObject({ curRcptNo: 51, invcNo: 9 })
    await waitFor(async () => (await d.repo.get('counters', row.id))?.cur_rcpt_no === 51)

    expect(await d.sync.notifyLocalDelete('counters', row.id)).toEqual({ sent: true })
    expect(await d.mesh.get('counters', row.id)).toBeUndefined()
    expect(await d.sync.notifyLocalDelete('counters', row.id)).toEqual({ sent: false, reason: 'unchanged' })
  })

  it('treats the notification of a just-applied remote removal as an echo', async () => {
    const d = await device(backend)
    await d.mesh.upsert('counters', [counterAdapter.toDocument(counter(2))])
    await waitFor(async () => (await d.repo.get('counters', 'c000002')) !== undefined)
    await d.mesh.remove('counters', ['c000002'])
    await waitFor(async () => (await d.repo.get('counters', 'c000002')) === undefined)
    expect(await d.sync.notifyLocalDelete('counters', 'c000002')).toEqual({ sent: false, reason: 'echo' })
    expect(d.writes.changed).toBe(0)
  })

  it('refuses records that do not map, and sends nothing for a receive-only model', async () => {
    const d = await device(backend)
    await expect(d.sync.notifyLocalUpsert('counters', { id: 'x', branch_id: 1n as never })).rejects.toMatchObject({
      code: 'DOCUMENT_REJECTED',
    })
    await expect(d.sync.notifyLocalUpsert('nope', {})).rejects.toThrow(/No adapter is registered for model nope/)
    const r = await device(backend, { ...counterAdapter, direction: Direction.receiveOnly })
    expect(await r.sync.notifyLocalUpsert('counters', counter(3))).toEqual({ sent: false, reason: 'receive-only' })
    expect(r.writes.changed).toBe(0)
  })
})
