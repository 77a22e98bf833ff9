// The check every comparison suite makes of its own results, in quick mode as
// in a full run: the figures are numbers a table can show. Nothing on speed.
import type { BenchResult } from './harness.js'

/** Returns `results`, or throws naming the first result that is not sane. */
export function sane(results: BenchResult[]): BenchResult[] {
  if (results.length === 0) throw new Error('bench: a comparison suite produced no results')
  for (const r of results) {
    const numbers = [r.min, r.median, r.max, ...(r.ratio === undefined ? [] : [r.ratio])]
    const ok =
      r.name.length > 0 &&
      r.workload.length > 0 &&
      r.unit.length > 0 &&
      Number.isInteger(r.runs) &&
      r.runs > 0 &&
      numbers.every(Number.isFinite) &&
      r.min <= r.median &&
      r.median <= r.max &&
      (r.baseline === undefined || (r.ratio !== undefined && Number.isFinite(r.baseline.median)))
    if (!ok) throw new Error(`bench: result "${r.name}" is not sane: ${JSON.stringify(r)}`)
  }
  return results
}
