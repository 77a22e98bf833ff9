// The status snapshot's counts are read again only when something may have
// changed them: an idle peer does not count its tables once a second.
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { afterEach, describe, expect, it } from 'vitest'
import type { SyncMetrics } from '../../src/bridge/metrics.js'
import { StoreCountCache } from '../../src/config/peer-snapshot.js'
import type { ResolvedModels } from '../../src/config/resolve-models.js'
import { openMesh, openSqliteRepository, type Repository } from '../../src/index.js'
import { COUNTERS_DDL, counter, counterAdapter, counterModel, INSERT_COUNTER } from '../bridge/helpers/counter-model.js'
import { tempDirs } from '../bridge/helpers/wait.js'

const dirs = tempDirs()
const cleanup: (() => unknown)[] = []

afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c()
  dirs.cleanup()
})

/** The repository, counting its `count` calls. */
function countingCounts(repo: Repository, calls: { n: number }): Repository {
  return new Proxy(repo, {
    get(target, prop) {
      if (prop === 'count') calls.n++
      const v = Reflect.get(target, prop, target)
      return typeof v === 'function' ? v.bind(target) : v
    },
  })
}

describe('the status snapshot counts', () => {
  it('are read again after a mesh commit, a change in the metrics, or their age; not otherwise', async () => {
    const dir = dirs.make('counts')
    const file = join(dir, 'app.db')
    const app = new Database(file)
    app.exec(COUNTERS_DDL)
    cleanup.push(() => app.close())
    const mesh = await openMesh({ dir: join(dir, 'mesh') })
    cleanup.push(() => mesh.close())
    const sqlite = await openSqliteRepository({ file, models: [counterModel] })
    cleanup.push(() => sqlite.close())
    const calls = { n: 0 }
    const repo = countingCounts(sqlite, calls)
    const models = { models: [counterModel], adapters: [counterAdapter] } as unknown as ResolvedModels
    const cache = new StoreCountCache(10_000)
    const metrics = (applied: number) => ({ received: 0, applied, parked: 0, rejected: 0, pushed: 0 }) as SyncMetrics
    let now = 1_000
    /** The counts, `ms` after the last read. */
    const later = (ms: number, applied: number) => {
      now += ms
      return cache.read(mesh, repo, models, metrics(applied), now)
    }

    const first = await cache.read(mesh, repo, models, metrics(0), now)
    expect(first.tables).toEqual({ counters: 0 })
    expect(first.collections).toEqual({ counters: 0 })
    expect(calls.n).toBe(1)

    // Nothing changed: the same counts, nothing read.
    for (let i = 0; i < 5; i++) await later(1_000, 0)
    expect(calls.n).toBe(1)

    // The mesh committed: counted again.
    await mesh.upsert('counters', [{ _id: 'c1', n: 1 }])
    const afterCommit = await later(1_000, 0)
    expect(afterCommit.collections).toEqual({ counters: 1 })
    expect(calls.n).toBe(2)

    // The bridge applied a row: counted again.
    app.prepare(INSERT_COUNTER).run(counter(1))
    const afterApply = await later(1_000, 1)
    expect(afterApply.tables).toEqual({ counters: 1 })
    expect(calls.n).toBe(3)

    // A write nothing announced (the app writing a table the bridge only receives into): seen once
    // the counts are old enough.
    app.prepare(INSERT_COUNTER).run(counter(2))
    expect((await later(1_000, 1)).tables).toEqual({ counters: 1 })
    expect((await later(10_000, 1)).tables).toEqual({ counters: 2 })
    expect(calls.n).toBe(4)
  })
})
