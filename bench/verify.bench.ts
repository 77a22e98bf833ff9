// Suite `verify`: what a verification against the mesh costs (coordinator.verify, run by a
// live peer every verifyIntervalMs). Its baseline, measured in the same run, is the least any
// comparison must do: read every document from the mesh and every exchanged state from the
// database once.
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { createSyncCoordinator, openMesh, openSqliteRepository, type SyncAdapter } from '../src/index.js'
import type { BenchResult, BenchSuite } from './harness.js'
import { summarise } from './harness.js'

const adapter: SyncAdapter = {
  model: 'item',
  collection: 'item',
  observerQuery: () => ({}),
  documentId: (row) => String(row.id),
  toDocument: (row) => {
    const { id, ...fields } = row
    return { ...fields, _id: String(id) }
  },
  fromDocument: (doc) => {
    const { _id, ...fields } = doc
    return { id: _id, ...fields }
  },
}

export const verifySuite: BenchSuite = {
  name: 'verify',
  async run(ctx): Promise<BenchResult[]> {
    const n = ctx.quick ? 5_000 : 100_000
    const runs = ctx.quick ? 3 : 5
    const dir = ctx.tempDir('mm-bench-verify-')
    const file = join(dir, 'app.db')
    const app = new Database(file)
    app.pragma('journal_mode = WAL')
    app.exec('CREATE TABLE item (id TEXT PRIMARY KEY, name TEXT NOT NULL, qty INTEGER NOT NULL)')
    const insert = app.prepare('INSERT INTO item (id, name, qty) VALUES (?, ?, ?)')
    app.transaction(() => {
      for (let i = 0; i < n; i++) insert.run(`i${String(i).padStart(7, '0')}`, `item ${i}`, i % 50)
    })()
    app.close()
    const mesh = await openMesh({ dir: join(dir, 'mesh') })
    const repository = await openSqliteRepository({ file, models: [{ name: 'item' }] })
    const sync = createSyncCoordinator({ mesh, repository, adapters: [adapter], settings: { verifyIntervalMs: 0 } })
    try {
      ctx.log(`verify: seeding ${n.toLocaleString('en')} rows`)
      await sync.start()
      await sync.flush()
      const reads: number[] = []
      const verifies: number[] = []
      for (let r = 0; r < runs; r++) {
        let t = performance.now()
        const docs = await mesh.find({ collection: 'item' })
        const states = await repository.allSyncStates('item', 1_000_000)
        reads.push(performance.now() - t)
        if (docs.length !== n || states?.size !== n) throw new Error('the bench database is not mirrored whole')
        t = performance.now()
        const report = await sync.verify({ repair: false })
        verifies.push(performance.now() - t)
        if (report.checked !== n || report.drifted.length > 0) throw new Error('verify found what it should not')
      }
      const workload = `${n.toLocaleString('en')} documents in step, one model`
      const baseline = summarise(
        {
          suite: 'verify',
          name: 'read every document and state once',
          workload,
          unit: 'ms',
          better: 'lower',
          warmup: 'none',
        },
        reads,
      )
      const verify = summarise(
        {
          suite: 'verify',
          name: 'verify against the mesh',
          workload,
          unit: 'ms',
          better: 'lower',
          warmup: 'none',
        },
        verifies,
      )
      verify.baseline = { name: baseline.name, median: baseline.median }
      verify.ratio = verify.median / baseline.median
      // At the default interval (15 minutes), less than 1 % of a core: 9 s per 100,000 documents.
      const budgetMs = (9_000 * n) / 100_000
      verify.target = {
        description: `under 1 % of a core at the default 15-minute interval (${Math.round(budgetMs).toLocaleString('en')} ms for ${n.toLocaleString('en')} documents)`,
        pass: verify.median < budgetMs,
      }
      return [baseline, verify]
    } finally {
      await sync.close()
      await repository.close()
      await mesh.close()
    }
  },
}
