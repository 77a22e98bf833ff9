// A setting swept over values at several rates, for the probes that tune a default by measurement
// (`coalesce-probe.ts`, `db-stream-probe.ts`): each round runs every value at every rate, the values in a
// different order each round so that a drift of the machine's speed falls on all of them; progress goes to
// stderr, and the medians over rounds to stdout as a Markdown table.
import { mkdtempSync, rmSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { percentile } from './harness.js'

/** The value of `--name` on the command line, or `fallback`. */
export function cliArg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1]! : fallback
}

export interface Sweep<S> {
  /** The setting swept, as the table's column heads it. */
  setting: string
  /** What the rate counts, per second (`writes`, `rows`). */
  per: string
  /** The values and rates, comma-separated, unless `--values` and `--rates` give them (`--rounds`: 2). */
  values: string
  rates: string
  /** One run in a fresh directory. */
  run(dir: string, rate: number, value: number): Promise<S>
  /** The figures of a run: each column's head, how to read it from a run, and how to print it. */
  columns: readonly { head: string; of(sample: S): number; format(n: number): string }[]
}

export async function sweep<S>(s: Sweep<S>): Promise<void> {
  const values = cliArg('values', s.values).split(',').map(Number)
  const rates = cliArg('rates', s.rates).split(',').map(Number)
  const rounds = Number(cliArg('rounds', '2'))
  const root = mkdtempSync(join(tmpdir(), 'mm-sweep-'))
  try {
    const samples = new Map<string, S[]>()
    for (let round = 0; round < rounds; round++) {
      for (const rate of rates) {
        for (const v of round % 2 === 0 ? values : [...values].reverse()) {
          const sample = await s.run(mkdtempSync(join(root, `${round}-${rate}-${v}-`)), rate, v)
          samples.set(`${rate} ${v}`, [...(samples.get(`${rate} ${v}`) ?? []), sample])
          const figures = s.columns.map((c) => `${c.head} ${c.format(c.of(sample))}`).join(', ')
          process.stderr.write(
            `round ${round + 1} ${rate} ${s.per}/s ${s.setting} ${v}: ${figures} (load ${loadavg()[0]!.toFixed(1)})\n`,
          )
        }
      }
    }
    const heads = [`${s.per}/s`, s.setting, ...s.columns.map((c) => c.head)]
    process.stdout.write(`| ${heads.join(' | ')} |\n|${heads.map(() => '---|').join('')}\n`)
    for (const rate of rates) {
      for (const v of values) {
        const runs = samples.get(`${rate} ${v}`)!
        const cells = s.columns.map((c) => c.format(percentile(runs.map(c.of), 50)))
        process.stdout.write(`| ${rate} | ${v} | ${cells.join(' | ')} |\n`)
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true })
  }
}

/** Milliseconds with two decimals. */
export const ms2 = (n: number) => `${n.toFixed(2)} ms`
/** Whole milliseconds. */
export const ms0 = (n: number) => `${n.toFixed(0)} ms`
