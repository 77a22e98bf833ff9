// Startup comparison: a device with N mirrored rows restarts after M documents
// changed in the mesh while it was away. The bridge really runs each policy:
// meshmirror's catch-up from its stored cursor, the seed's `skipInitialFetch`,
// and a full initial fetch with no stored hashes (the seed without the skip,
// whose hashes lived in memory and were empty at every start).
import { cpSync } from 'node:fs'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import type { SyncSettings } from '../src/bridge/settings.js'
import { openBuiltinStore } from '../src/engine/open-builtin-store.js'
import { applied, device, doc, mirrored, transfer, upsertAll } from './bridge.bench.js'
import { sane } from './compare-sane.js'
import { type BenchContext, type BenchResult, type BenchSuite, summarise, withBaseline } from './harness.js'

interface Policy {
  name: string
  settings: SyncSettings
  /** Forget the stored hashes and cursors before starting. */
  forget?: boolean
}

const POLICIES: Policy[] = [
  { name: 'meshmirror (catch-up from the stored cursor)', settings: {} },
  { name: "seed's skipInitialFetch", settings: { skipInitialFetch: true } },
  { name: 'full initial fetch, no stored hashes (the seed without the skip)', settings: {}, forget: true },
]

/** A device directory holding `n` mirrored rows, closed after `changed` documents changed in its mesh from another site. */
async function prepare(ctx: BenchContext, n: number, changed: number): Promise<string> {
  const dir = ctx.tempDir('startup-base')
  const first = await mirrored(dir, n)
  await first.close()
  // Another device, in sync with this one, changes `changed` documents; replication delivers them while the app is away.
  const other = await openBuiltinStore({ dir: ctx.tempDir('startup-other') })
  const mesh = await openBuiltinStore({ dir: join(dir, 'mesh') })
  await transfer(mesh, other)
  await upsertAll(other, changed, 1)
  await transfer(other, mesh)
  await mesh.close()
  await other.close()
  return dir
}

interface Outcome {
  ms: number
  /** Rows the bridge wrote to the app table (upserts and deletes sent to SQLite). */
  upserts: number
  /** Of those, rows whose content differed (SQLite leaves an identical row untouched). */
  changed: number
  missed: number
}

async function restart(ctx: BenchContext, base: string, policy: Policy, changed: number): Promise<Outcome> {
  const dir = ctx.tempDir('startup-run')
  cpSync(base, dir, { recursive: true })
  if (policy.forget) {
    const app = new Database(join(dir, 'app.db'))
    app.exec("DELETE FROM _meshmirror_sync_state; DELETE FROM _meshmirror_checkpoints WHERE key LIKE 'cursor:%'")
    app.close()
  }
  const t0 = performance.now()
  const d = await device(dir, policy.settings, false)
  let upserts = 0
  d.registry.on('applied', (b) => {
    upserts += b.rows
  })
  await d.registry.start()
  const ms = performance.now() - t0
  // Whatever the policy would still pick up on its own, it gets the time to.
  await d.registry.coordinator.flush()
  await new Promise((r) => setTimeout(r, 300))
  await d.registry.coordinator.flush()
  const cur = d.app.prepare('SELECT cur_rcpt_no FROM counters WHERE id = ?').pluck()
  let missed = 0
  for (let i = 0; i < changed; i++) {
    const want = doc(i, 1)
    if (cur.get(want._id) !== want.curRcptNo) missed++
  }
  const changedRows = applied(d)
  await d.close()
  return { ms, upserts, changed: changedRows, missed }
}

export const compareStartupSuite: BenchSuite = {
  name: 'compare-startup',
  async run(ctx) {
    const n = ctx.quick ? 2_000 : 100_000
    const changed = ctx.quick ? 100 : 1_000
    const runs = ctx.quick ? 1 : 3
    ctx.log(`startup: ${n} mirrored rows, ${changed} changed while away; ${runs} restarts per policy`)
    const base = await prepare(ctx, n, changed)
    // Warm-up: one restart with meshmirror's policy, not counted.
    await restart(ctx, base, POLICIES[0]!, changed)
    const outcomes = POLICIES.map(() => [] as Outcome[])
    for (let r = 0; r < runs; r++) {
      for (const [i, p] of POLICIES.entries()) outcomes[i]!.push(await restart(ctx, base, p, changed))
    }
    const workload = `${n} rows mirrored by an earlier run; ${changed} of their documents changed by another device and replicated into this device's mesh while the app was not running; the bridge restarts with the policy`
    const warmup = 'one restart with meshmirror’s policy'
    const results: BenchResult[] = []
    type Key = keyof Outcome
    const bases: Partial<Record<Key, BenchResult>> = {}
    for (const [i, p] of POLICIES.entries()) {
      const figure = (key: Key, what: string, unit: string, detail: string) => {
        const r = summarise(
          {
            suite: 'compare-startup',
            name: `startup, ${p.name}: ${what}`,
            workload: `${workload}; ${detail}`,
            unit,
            better: 'lower',
            warmup,
          },
          outcomes[i]!.map((o) => o[key]),
        )
        const b = bases[key]
        if (!b) bases[key] = r
        // A ratio against zero (nothing missed) says nothing.
        return b && b.median > 0 ? withBaseline(r, b) : r
      }
      results.push(
        figure(
          'upserts',
          'rows written',
          'rows',
          'rows the bridge upserted or deleted in the app table during startup',
        ),
        figure(
          'changed',
          'rows whose content changed',
          'rows',
          'of the rows written, those whose content differed (SQLite leaves a row with identical content untouched)',
        ),
        figure(
          'missed',
          'changes missed',
          'rows',
          `of the ${changed} changed documents, rows that still hold the old content once the bridge is live and idle`,
        ),
        figure('ms', 'time to live', 'ms', 'from opening the mesh and the repository to the bridge being live'),
      )
    }
    return sane(results)
  },
}
