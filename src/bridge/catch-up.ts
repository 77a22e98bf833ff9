import { ErrorCode, hasCode } from '../errors.js'
import type { ChangeSet } from '../mesh/mesh-store.js'
import type { AdapterBinding } from './adapter-binding.js'
import { ingest } from './remote-intake.js'
import type { SyncRuntime } from './runtime.js'

/** What a pull read. */
export interface CatchUpReport {
  /** Changed documents read (before change detection). */
  changed: number
  /** Removals read. */
  removed: number
  pages: number
  /** True when the stored cursor was refused and the whole scope was read. */
  reset: boolean
}

/**
 * Reads what changed in the adapter's scope after its cursor, page by page,
 * and takes it in: the startup catch-up, and every live update (observer
 * deliveries only signal that something changed).
 *
 * Reading changes rather than trusting observer diffs is what makes the
 * bridge exact: a diff is relative to the observer's previous delivery, so a
 * document inserted and removed (or changed and changed back) between two
 * deliveries shows no difference, while the repository may hold the
 * intermediate state. The change feed reports every document whose stored
 * state moved, and change detection compares it with what the repository
 * last exchanged.
 *
 * Each page's cursor is stored in the transaction that writes the page's
 * last change. A cursor the mesh refuses (a re-created mesh) restarts from
 * the beginning, where change detection keeps identical rows from being written.
 */
export async function pull(
  rt: SyncRuntime,
  binding: AdapterBinding,
  onProgress?: (done: number) => void,
  options: { ignoreStop?: boolean } = {},
): Promise<CatchUpReport> {
  const report: CatchUpReport = { changed: 0, removed: 0, pages: 0, reset: false }
  const scopeKey = binding.scopeKey
  for (;;) {
    // The scope changed meanwhile: the new scope reads from its own cursor.
    if (binding.scopeKey !== scopeKey || (rt.stopping.aborted && !options.ignoreStop)) return report
    const page = await binding.run(async (): Promise<ChangeSet | 'again' | 'full' | undefined> => {
      if (binding.scopeKey !== scopeKey || !binding.receives || binding.cursor === undefined) return undefined
      // Checked under the binding's lock: pulls started by observer deliveries
      // and polls meanwhile wait here too, so the queue exceeds its mark by one page at most.
      if (rt.queue.depth >= rt.settings.highWaterMark) return 'full'
      const from = binding.cursor
      let p: ChangeSet
      const window = rt.overlap.beginRead()
      try {
        p = await rt.mesh.changesSince(from, binding.scope, { limit: rt.settings.catchUpPageSize })
      } catch (error) {
        rt.overlap.endRead(window)
        if (from === null || !hasCode(error, ErrorCode.INVALID_CURSOR)) throw error
        rt.events.emit('cursor-reset', { model: binding.model, error })
        rt.logger.warn('stored mesh cursor refused; reading the scope from the start', { model: binding.model })
        binding.cursor = null
        report.reset = true
        return 'again'
      }
      try {
        await ingest(
          rt,
          binding,
          p.changed,
          p.removed.map((id) => ({ id })),
          { window },
        )
      } finally {
        rt.overlap.endRead(window)
      }
      if (binding.persistCursor) rt.queue.mark({ key: binding.cursorKey, value: p.cursor })
      binding.cursor = p.cursor
      return p
    })
    if (page === 'again') continue
    if (page === 'full') {
      await rt.queue.belowHighWater()
      continue
    }
    if (page === undefined) return report
    report.pages++
    report.changed += page.changed.length
    report.removed += page.removed.length
    if (page.changed.length + page.removed.length > 0) onProgress?.(report.changed + report.removed)
    await rt.queue.belowHighWater()
    if (!page.hasMore) return report
  }
}
