import type { DashboardSnapshot, ModelCounts } from './source.js'

/** One point of a table's charts. */
export interface SeriesPoint {
  /** ms since the epoch. */
  t: number
  /** Remote rows applied per second. */
  in: number
  /** Local changes sent per second. */
  out: number
  /** Receipt to commit of the last applied batch, ms (the peer's, not the table's own). */
  lag: number
}

/** Points kept per table: five minutes at one a second. */
const KEEP = 300

/** In/out rates and lag of every table over the last minutes, from the peer's counters. */
export class TableSeries {
  private readonly points = new Map<string, SeriesPoint[]>()
  private last: { t: number; counts: Record<string, ModelCounts> } | undefined

  /** Adds a point per model from counters read at time `t` (points closer than 900 ms are skipped). */
  add(t: number, counts: Record<string, ModelCounts>, models: readonly string[], snapshot: DashboardSnapshot): void {
    const last = this.last
    if (last && t - last.t < 900) return
    this.last = { t, counts }
    if (!last) return
    const seconds = (t - last.t) / 1000
    for (const model of models) {
      const now = counts[model]
      const before = last.counts[model]
      const rate = (k: 'applied' | 'pushed') => Math.max(0, ((now?.[k] ?? 0) - (before?.[k] ?? 0)) / seconds)
      let list = this.points.get(model)
      if (!list) {
        list = []
        this.points.set(model, list)
      }
      list.push({ t, in: round(rate('applied')), out: round(rate('pushed')), lag: Math.round(snapshot.sync.lagMs) })
      if (list.length > KEEP) list.splice(0, list.length - KEEP)
    }
  }

  of(model: string): SeriesPoint[] {
    return this.points.get(model) ?? []
  }
}

function round(n: number): number {
  return Math.round(n * 10) / 10
}
