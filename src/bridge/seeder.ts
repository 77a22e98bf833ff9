import { delay } from '../util/delay.js'
import type { AdapterBinding } from './adapter-binding.js'
import { pushLocal } from './local-push.js'
import type { Reconcile } from './outbox-drain.js'
import type { SyncRuntime } from './runtime.js'

/** What seeding did for one model. */
export interface SeedReport {
  /** Rows that had never been exchanged with the mesh when seeding began. */
  total: number
  /** Rows sent to the mesh. */
  sent: number
  /** Rows whose document the mesh already had: the mesh's content was applied instead. */
  existing: number
  /** True when a previous run completed seeding and change capture makes another scan unnecessary. */
  alreadyDone: boolean
}

/**
 * Sends rows never exchanged with the mesh (a database that predates sync,
 * or rows written while change capture was off), in chunks, in primary-key
 * order. Resumable and idempotent: a sent row gets its sync state in the
 * same step, so an interrupted seed continues where it stopped. On first
 * contact the mesh wins: a row whose document the mesh already holds
 * receives the mesh's content (when in scope) instead of overwriting it.
 */
export async function seed(
  rt: SyncRuntime,
  binding: AdapterBinding,
  reconcile: Reconcile,
  onProgress?: (done: number, total: number) => void,
): Promise<SeedReport> {
  const repo = rt.repository
  const report: SeedReport = { total: 0, sent: 0, existing: 0, alreadyDone: false }
  if (!binding.sends) return report
  const model = binding.model
  if (repo.capturesChanges && (await repo.checkpoint(binding.seedKey)) === 'done') {
    report.alreadyDone = true
    return report
  }
  report.total = await repo.countUnmirrored(model)
  let after: string | null = null
  let done = 0
  while (!rt.stopping.aborted) {
    const scanned = await repo.unmirrored(model, { after, limit: rt.settings.seedBatchSize })
    if (scanned.length === 0) break
    const scannedIds = scanned.map((r) => repo.rowId(model, r))
    after = scannedIds[scannedIds.length - 1]!
    // A row with captured changes not yet sent is seeded as it was before them (one created
    // since is not seeded at all): the outbox sends those changes, and a counter change sent
    // both within the seeded row and as an increment would count twice.
    const before = repo.rowsAt ? await repo.rowsAt(model, scannedIds, 0) : undefined
    const ids = before ? scannedIds.filter((id) => before.has(id)) : scannedIds
    const rows = before ? ids.map((id) => before.get(id)!) : scanned
    const stored = await repo.syncStates(model, ids)
    const result = await pushLocal(rt, [{ binding, docs: rows.map((row, i) => ({ id: ids[i]!, row })), stored }], {
      skipExisting: binding.receives,
    })
    try {
      await repo.transaction(async (tx) => {
        for (const [m, states] of result.states) await tx.putSyncStates(m, states)
      })
      for (const [m, states] of result.states) rt.states.record(m, states)
    } finally {
      result.release()
    }
    report.sent += result.upserts
    const existing = result.existing.get(model) ?? []
    report.existing += existing.length
    if (existing.length > 0)
      await reconcile(
        model,
        existing.map((d) => d._id),
      )
    for (const [m, list] of result.reconcile) await reconcile(m, list)
    done += scanned.length
    onProgress?.(done, Math.max(done, report.total))
    if (rt.settings.delayBetweenBatches > 0)
      await delay(rt.settings.delayBetweenBatches, rt.shutdown).catch(() => undefined)
    // Each chunk resolves without I/O: let timers, sockets and signals run between chunks,
    // so a long seed neither starves peers' keep-alives nor ignores a request to stop.
    else await new Promise<void>((resolve) => setImmediate(resolve))
  }
  if (repo.capturesChanges && !rt.stopping.aborted) {
    await repo.transaction(async (tx) => tx.setCheckpoint(binding.seedKey, 'done'))
  }
  return report
}
