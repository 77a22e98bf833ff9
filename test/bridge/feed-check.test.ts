// The bridge checks the mesh's change feed for changes no observer delivery
// announced. On a mesh that announces its commits (builtin) the check runs
// after a commit and never while nothing happens; on one that does not
// (Ditto) it runs every `pollIntervalMs`.
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import { createSyncCoordinator, type MeshStore, openSqliteRepository } from '../../src/index.js'
import { COUNTERS_DDL, counterAdapter, counterModel } from './helpers/counter-model.js'
import { BACKENDS, openTestMesh } from './helpers/node.js'
import { tempDirs, waitFor } from './helpers/wait.js'

const dirs = tempDirs()
const cleanup: (() => unknown)[] = []

afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
  dirs.cleanup()
})

/** The mesh as the bridge sees it, counting its reads of the change feed. */
function countingReads(mesh: MeshStore, reads: { cursor: number; changes: number }): MeshStore {
  return new Proxy(mesh, {
    get(target, prop) {
      if (prop === 'currentCursor') reads.cursor++
      if (prop === 'changesSince') reads.changes++
      const v = Reflect.get(target, prop, target)
      return typeof v === 'function' ? v.bind(target) : v
    },
  })
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/**
 * Whether a stretch of `ms` with no read of the feed comes within ten tries
 * (what the bridge's start wrote may still be settling on a loaded machine).
 * A bridge that reads the feed on a timer never has one.
 */
async function quietFor(reads: { cursor: number; changes: number }, ms: number): Promise<boolean> {
  for (let i = 0; i < 10; i++) {
    reads.cursor = 0
    reads.changes = 0
    await sleep(ms)
    if (reads.cursor === 0 && reads.changes === 0) return true
  }
  return false
}

describe.each(BACKENDS)('the check of the change feed on the %s mesh', (backend) => {
  it(
    backend === 'builtin'
      ? 'reads nothing while idle, and checks after a commit no delivery announced'
      : 'reads the feed every pollIntervalMs (Ditto announces no commits)',
    async () => {
      const dir = dirs.make('feed')
      const file = join(dir, 'app.db')
      const db = new Database(file)
      db.exec(COUNTERS_DDL)
      db.close()
      const mesh = await openTestMesh(backend, join(dir, 'mesh'), [counterAdapter])
      const repo = await openSqliteRepository({ file, models: [counterModel] })
      const reads = { cursor: 0, changes: 0 }
      const sync = createSyncCoordinator({
        mesh: countingReads(mesh, reads),
        repository: repo,
        adapters: [counterAdapter],
        context: { branchId: 1 },
        settings: { pollIntervalMs: 20 },
      })
      cleanup.push(
        () => mesh.close(),
        () => repo.close(),
        () => sync.close(),
      )
      await sync.start()
      await sleep(300)

      if (backend !== 'builtin') {
        reads.cursor = 0
        await sleep(400)
        expect(reads.cursor).toBeGreaterThanOrEqual(5)
        return
      }
      expect(await quietFor(reads, 400)).toBe(true)

      // A commit outside the mirrored collection: no delivery for the bridge's observer, but
      // the feed moved past the bridge's cursor, so the check reads it.
      await mesh.upsert('elsewhere', [{ _id: 'x', n: 1 }])
      await waitFor(() => reads.changes > 0, { message: 'the feed read after the commit', timeout: 2_000 })
      expect(reads.cursor).toBeGreaterThanOrEqual(1)

      // Then quiet again.
      expect(await quietFor(reads, 400)).toBe(true)
    },
  )
})
