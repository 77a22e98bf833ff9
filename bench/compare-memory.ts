// Memory comparison: resident memory of a process holding N documents in the
// builtin engine, in Yjs (a Y.Map of records) and in Automerge (a map of
// records). Each figure comes from its own child process (fresh heap), after gc.
import { spawnJsonChild } from './compare-child.js'
import { sane } from './compare-sane.js'
import { type BenchContext, type BenchResult, type BenchSuite, summarise, withBaseline } from './harness.js'

const CHILD = 'bench/compare-memory-child.ts'

const ENGINES = [
  { id: 'builtin', name: 'builtin engine', holds: 'upserted into a builtin mesh store (SQLite on disk)' },
  { id: 'yjs', name: 'Yjs', holds: 'set as plain-object values of one Y.Map, one Y transaction per batch' },
  { id: 'automerge', name: 'Automerge', holds: 'assigned as nested maps under one map key, one change per batch' },
] as const

interface Measured {
  rssMB: number
  loaded: number
  /** False when the time cap stopped the load. */
  finished: boolean
}

/** Runs one child; on the time cap, stops it and keeps the last progress line. */
async function measure(engine: string, n: number, dir: string, capMs: number): Promise<Measured> {
  const child = spawnJsonChild(CHILD, [engine, String(n), dir])
  try {
    const done = await child.waitFor((l) => l.done === true, capMs)
    await child.exited
    return { rssMB: done.rssMB as number, loaded: n, finished: true }
  } catch (error) {
    await child.stop('SIGKILL')
    const last = child.lines[child.lines.length - 1]
    if (!last || child.lines.some((l) => l.done === true)) throw error
    return { rssMB: last.rssMB as number, loaded: last.loaded as number, finished: false }
  }
}

async function atSize(ctx: BenchContext, n: number, capMs: number): Promise<BenchResult[]> {
  const results: BenchResult[] = []
  let base: BenchResult | undefined
  for (const e of ENGINES) {
    // Automerge's loads take minutes: one run of it, three of the others.
    const runs = ctx.quick || e.id === 'automerge' ? 1 : 3
    ctx.log(`memory: ${e.name} holding ${n.toLocaleString('en')} documents, ${runs} run(s) (cap ${capMs / 1000} s)`)
    const all: Measured[] = []
    for (let r = 0; r < runs && all.every((x) => x.finished); r++) {
      all.push(await measure(e.id, n, ctx.tempDir(`mem-${e.id}`), capMs))
    }
    const m = all.find((x) => !x.finished) ?? all[0]!
    const common = {
      suite: 'compare-memory',
      unit: 'MB',
      better: 'lower' as const,
      warmup: 'none (a fresh process per figure)',
    }
    if (!m.finished) {
      results.push(
        summarise(
          {
            ...common,
            name: `${e.name}: resident memory, ${n.toLocaleString('en')} documents — did not finish: stopped at the ${capMs / 1000} s cap after ${m.loaded.toLocaleString('en')} documents`,
            workload: `${n} 8-field documents ${e.holds}, batches of 5,000; the load was stopped at the time cap and the figure is the resident memory then (before gc)`,
          },
          [m.rssMB],
        ),
      )
      continue
    }
    const r = summarise(
      {
        ...common,
        name: `${e.name}: resident memory holding ${n.toLocaleString('en')} documents`,
        workload: `a process holding ${n} 8-field documents ${e.holds}, batches of 5,000, then gc; RSS`,
      },
      all.map((x) => x.rssMB),
    )
    base ??= r
    results.push(r === base ? r : withBaseline(r, base))
  }
  return results
}

export const compareMemorySuite: BenchSuite = {
  name: 'compare-memory',
  async run(ctx) {
    const sizes = ctx.quick ? [1_000, 2_000] : [100_000, 1_000_000]
    const capMs = ctx.quick ? 30_000 : 75_000
    ctx.log('memory: resident memory of the same helper process with nothing loaded')
    const empty = await measure('empty', 0, ctx.tempDir('mem-empty'), capMs)
    const results: BenchResult[] = [
      summarise(
        {
          suite: 'compare-memory',
          name: 'helper process with nothing loaded',
          workload: 'the same helper process (Node, tsx, the document generator), no documents, after gc; RSS',
          unit: 'MB',
          better: 'lower',
          warmup: 'none',
        },
        [empty.rssMB],
      ),
    ]
    for (const n of sizes) results.push(...(await atSize(ctx, n, capMs)))
    return sane(results)
  },
}
