import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import {
  type ChangeSet,
  createSyncCoordinator,
  Direction,
  type MeshStore,
  openSqliteRepository,
  type Repository,
  type SqliteRepository,
  type SyncCoordinator,
} from '../../src/index.js'
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
  wrap: (mesh: MeshStore) => MeshStore = (mesh) => mesh,
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
    mesh: wrap(countingMesh(mesh, writes)),
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

/**
 * The mesh with its change feed held at will: `hold(page => …)` makes the next
 * page the predicate picks wait, once read, until `open()`; `gate` sets what
 * every later page waits for.
 */
function heldFeed() {
  let pick: ((page: ChangeSet) => boolean) | undefined
  let reached: (() => void) | undefined
  let release: Promise<void> = Promise.resolve()
  let open: () => void = () => undefined
  let later: () => Promise<unknown> = async () => undefined
  const wrap = (mesh: MeshStore): MeshStore =>
    new Proxy(mesh, {
      get(target, prop) {
        if (prop === 'changesSince') {
          return async (...a: Parameters<MeshStore['changesSince']>) => {
            const page = await target.changesSince(...a)
            if (pick?.(page)) {
              pick = undefined
              reached?.()
              await release
            } else if (pick === undefined) await later()
            return page
          }
        }
        const v = Reflect.get(target, prop, target)
        return typeof v === 'function' ? v.bind(target) : v
      },
    })
  return {
    wrap,
    /** Resolves once a page `select` picks has been read (and is held). */
    hold(select: (page: ChangeSet) => boolean): Promise<void> {
      release = new Promise((resolve) => {
        open = resolve
      })
      return new Promise((resolve) => {
        reached = resolve
        pick = select
      })
    },
    open(): void {
      open()
    },
    /** What pages read after the held one wait for. */
    gate(until: () => Promise<unknown>): void {
      later = until
    },
  }
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
    // The row already reads 51 (the app wrote it); what the bridge queued to put back must land first,
    // or the removal below races it and the last call can see that queued content as an echo.
    await d.sync.flush()
    expect((await d.repo.get('counters', row.id))?.cur_rcpt_no).toBe(51)

    // The app deletes the row, then notifies: a row still in the file would read as a remote
    // version written over the removal, and be put right from the mesh.
    await d.repo.delete('counters', [row.id])
    expect(await d.sync.notifyLocalDelete('counters', row.id)).toEqual({ sent: true })
    expect(await d.mesh.get('counters', row.id)).toBeUndefined()
    expect(await d.sync.notifyLocalDelete('counters', row.id)).toEqual({ sent: false, reason: 'unchanged' })
  })

  it('never applies content read before a local write after it, even when the read is taken in last', async () => {
    const feed = heldFeed()
    const d = await device(backend, counterAdapter, feed.wrap)
    // Every value the row takes, in order: the app's and the bridge's writes.
    const db = new Database(d.repo.file)
    cleanup.push(() => db.close())
    db.exec(`CREATE TABLE seen (rcpt INTEGER);
      CREATE TRIGGER seen_insert AFTER INSERT ON counters BEGIN INSERT INTO seen VALUES (new.cur_rcpt_no); END;
      CREATE TRIGGER seen_update AFTER UPDATE ON counters BEGIN INSERT INTO seen VALUES (new.cur_rcpt_no); END;`)
    const seen = () =>
      (db.prepare('SELECT rcpt FROM seen ORDER BY rowid').all() as { rcpt: number }[]).map((r) => r.rcpt)
    const row = counter(1)
    await d.repo.upsert('counters', [row])
    expect(await d.sync.notifyLocalUpsert('counters', row)).toEqual({ sent: true })

    // A remote edit is read from the mesh, and held there before the bridge takes it in.
    const held = feed.hold((page) => page.changed.some((doc) => doc.curRcptNo === 60))
    await d.mesh.upsert('counters', [{ _id: row.id, curRcptNo: 60 }])
    await held
    // Meanwhile the app edits the row and notifies it: the mesh merges the edit over the remote one.
    const local = { ...row, cur_rcpt_no: 51, invc_no: 9 }
    await d.repo.upsert('counters', [local])
    expect(await d.sync.notifyLocalUpsert('counters', local)).toEqual({ sent: true })
    expect(await d.mesh.get('counters', row.id)).toMatchObject({ curRcptNo: 51, invcNo: 9 })
    const from = seen().length
    const deferred = d.sync.metrics().deferred
    // Later pages wait until the held one is taken in: written, or set aside to be read again.
    feed.gate(() => waitFor(() => seen().length > from || d.sync.metrics().deferred > deferred))
    feed.open()
    await waitFor(() => seen().length > from || d.sync.metrics().deferred > deferred)
    feed.gate(async () => undefined)
    await d.sync.flush()

    // The content read before the local edit never reached the row, and the edit is what was exchanged.
    expect(seen().slice(from)).not.toContain(60)
    expect((await d.repo.get('counters', row.id))?.cur_rcpt_no).toBe(51)
    expect(await d.sync.notifyLocalUpsert('counters', local)).toEqual({ sent: false, reason: 'unchanged' })
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
