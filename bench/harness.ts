import { execSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'

/** One reported figure. */
export interface BenchResult {
  suite: string
  name: string
  /** What was measured, in words. */
  workload: string
  unit: string
  /** Higher is better (throughput) or lower is better (latency, memory). */
  better: 'higher' | 'lower'
  warmup: string
  runs: number
  min: number
  median: number
  max: number
  /** The baseline measured in the same run, when there is one. */
  baseline?: { name: string; median: number }
  /** `median / baseline.median`. */
  ratio?: number
  /** The goal, and whether this run met it. */
  target?: { description: string; pass: boolean }
}

export interface BenchContext {
  quick: boolean
  /** A fresh temporary directory, removed after the suite. */
  tempDir(prefix: string): string
  log(message: string): void
}

export interface BenchSuite {
  name: string
  run(ctx: BenchContext): Promise<BenchResult[]>
}

export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}

export function percentile(xs: readonly number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!
}

/** Summarises samples into a result. */
export function summarise(
  base: Omit<BenchResult, 'min' | 'median' | 'max' | 'runs'>,
  samples: readonly number[],
): BenchResult {
  return {
    ...base,
    runs: samples.length,
    min: Math.min(...samples),
    median: median(samples),
    max: Math.max(...samples),
  }
}

/** Adds the ratio against a baseline result. */
export function withBaseline(result: BenchResult, baseline: BenchResult): BenchResult {
  return {
    ...result,
    baseline: { name: baseline.name, median: baseline.median },
    ratio: result.median / baseline.median,
  }
}

export function makeContext(quick: boolean): { ctx: BenchContext; cleanup(): void } {
  const dirs: string[] = []
  return {
    ctx: {
      quick,
      tempDir(prefix) {
        const d = mkdtempSync(join(tmpdir(), `mm-bench-${prefix}-`))
        dirs.push(d)
        return d
      },
      log: (m) => process.stderr.write(`  ${m}\n`),
    },
    cleanup() {
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
    },
  }
}

/** The machine and versions a run was made on. */
export function machine(sqliteVersion: string): Record<string, string | number> {
  let commit = 'unknown'
  try {
    commit = execSync('git rev-parse --short HEAD', { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim()
  } catch {
    // Not a git checkout.
  }
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    sqlite: sqliteVersion,
    platform: `${process.platform} ${process.arch}`,
    commit,
  }
}
