// The app database's WAL checkpoints, in the worker or on the event loop: `npx tsx bench/app-checkpoint-probe.ts
// [--rows 200000] [--batch 500] [--body 300] [--pause 5] [--rounds 3]`.
//
// A stream of received changes applied to the app's SQLite file through the repository, one transaction a
// batch with a short pause between them (a catch-up's pace), with `checkpoints: 'inline'` and
// `'background'` alternately, every other round in reverse order. For each: the total time and the batches'
// latency; the longest batch is the one that copied the WAL when the checkpoint ran on this thread.

import { mkdtempSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { openSqliteRepository } from '../src/index.js'
import { percentile } from './harness.js'

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}
const ROWS = arg('rows', 200_000)
const BATCH = arg('batch', 500)
const BODY = arg('body', 300)
const PAUSE = arg('pause', 5)
const ROUNDS = arg('rounds', 3)

async function round(mode: 'inline' | 'background'): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mm-app-ckpt-'))
  const file = join(dir, 'app.db')
  const db = new Database(file)
  db.pragma('journal_mode = WAL')
  db.exec('CREATE TABLE items (id TEXT PRIMARY KEY, v INTEGER NOT NULL, body TEXT)')
  db.close()
  const repo = await openSqliteRepository({ file, models: [{ name: 'items' }], checkpoints: mode })
  const latencies: number[] = []
  const start = performance.now()
  for (let i = 0; i < ROWS; i += BATCH) {
    const rows = Array.from({ length: BATCH }, (_, j) => ({ id: `m-${i + j}`, v: i + j, body: 'x'.repeat(BODY) }))
    const t = performance.now()
    await repo.transaction((tx) => tx.upsert('items', rows), { origin: 'remote' })
    latencies.push(performance.now() - t)
    await new Promise((resolve) => setTimeout(resolve, PAUSE))
  }
  const total = performance.now() - start
  const f = (ms: number) => ms.toFixed(1)
  console.log(
    `${mode.padEnd(10)} total ${f(total)} ms; batch p50 ${f(percentile(latencies, 50))}, p99 ${f(percentile(latencies, 99))}, ` +
      `longest ${f(Math.max(...latencies))} ms; batches over 10 ms ${latencies.filter((l) => l > 10).length} of ${latencies.length}; ` +
      `worker checkpoints ${repo.stats().backgroundCheckpoints}`,
  )
  await repo.close()
  rmSync(dir, { recursive: true, force: true })
}

console.log(
  `${ROWS} rows of ${BODY} bytes, ${BATCH} a transaction, ${PAUSE} ms apart; load ${loadavg()[0]!.toFixed(1)}`,
)
for (let r = 0; r < ROUNDS; r++) {
  const order: ('inline' | 'background')[] = r % 2 ? ['background', 'inline'] : ['inline', 'background']
  for (const mode of order) await round(mode)
}
console.log(`load ${loadavg()[0]!.toFixed(1)}`)
