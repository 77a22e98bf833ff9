// Runs the benchmarks: `npm run bench [-- --quick] [suite...]`.
// Writes bench/results/latest.json and BENCHMARKS.md.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import Database from 'better-sqlite3'
import { bridgeSuite } from './bridge.bench.js'
import { compareApplySuite } from './compare-apply.js'
import { compareMemorySuite } from './compare-memory.js'
import { compareMeshStoreSuite } from './compare-mesh-store.js'
import { compareReplicationSuite } from './compare-replication.js'
import { compareStartupSuite } from './compare-startup.js'
import { dbLatencySuite } from './db-latency.js'
import { dittoSuite } from './ditto.bench.js'
import { engineSuite } from './engine.bench.js'
import { type BenchResult, type BenchSuite, machine, makeContext } from './harness.js'
import { hubSuite } from './hub.bench.js'
import { instanceSuite } from './instance.bench.js'
import { postgresSuite } from './postgres.bench.js'
import { relationalSuite } from './relational.bench.js'
import { replicationEncryptionSuite, replicationSuite } from './replication.bench.js'
import { verifySuite } from './verify.bench.js'

const suites: BenchSuite[] = [
  engineSuite,
  instanceSuite,
  bridgeSuite,
  dittoSuite,
  replicationSuite,
  replicationEncryptionSuite,
  relationalSuite,
  compareApplySuite,
  compareStartupSuite,
  compareMeshStoreSuite,
  compareMemorySuite,
  compareReplicationSuite,
  dbLatencySuite,
  verifySuite,
  postgresSuite,
  hubSuite,
]

const args = process.argv.slice(2)
const quick = args.includes('--quick')
const only = args.filter((a) => !a.startsWith('--'))
const selected = suites.filter((s) => only.length === 0 || only.includes(s.name))
if (selected.length === 0) {
  process.stderr.write(`No suite named ${only.join(', ')}. Suites: ${suites.map((s) => s.name).join(', ')}\n`)
  process.exit(1)
}

const sqlite = (new Database(':memory:').prepare('SELECT sqlite_version() AS v').get() as { v: string }).v
const env = machine(sqlite)
const results: BenchResult[] = []
const started = new Date()
for (const suite of selected) {
  process.stderr.write(`suite ${suite.name}${quick ? ' (quick)' : ''}\n`)
  const { ctx, cleanup } = makeContext(quick)
  try {
    results.push(...(await suite.run(ctx)))
  } finally {
    cleanup()
  }
}

// Results of suites not run this time are kept from the previous run, with their date.
const LATEST = 'bench/results/latest.json'
type Saved = {
  date: string
  quick: boolean
  machine: Record<string, unknown>
  results: (BenchResult & { date?: string })[]
}
const previous: Saved | undefined = existsSync(LATEST) ? (JSON.parse(readFileSync(LATEST, 'utf8')) as Saved) : undefined
const ran = new Set(selected.map((s) => s.name))
const stamped = results.map((r) => ({ ...r, date: started.toISOString() }))
const kept = (previous?.results ?? [])
  .filter((r) => !ran.has(r.suite))
  .map((r) => ({ ...r, date: r.date ?? previous?.date ?? '' }))
const all = [...kept, ...stamped].sort(
  (a, b) => suites.findIndex((s) => s.name === a.suite) - suites.findIndex((s) => s.name === b.suite),
)

const fmt = (n: number) => (Math.abs(n) >= 100 ? Math.round(n).toLocaleString('en') : n.toPrecision(3))
const rows = all.map(
  (r) =>
    `| ${r.suite} | ${r.name} | ${fmt(r.median)} ${r.unit} | ${fmt(r.min)} – ${fmt(r.max)} | ${r.runs} | ${
      r.ratio === undefined
        ? ''
        : `${r.ratio >= 0.1 ? r.ratio.toFixed(2) : r.ratio.toPrecision(2)}× ${r.baseline?.name}`
    } | ${r.target ? `${r.target.pass ? 'met' : 'MISSED'}: ${r.target.description}` : ''} | ${r.date.slice(0, 10)} |`,
)
const md = `# Benchmarks

Produced by \`npm run bench${quick ? ' -- --quick' : ''}\` (a suite can be run alone: \`npm run bench -- instance\`; the others keep their last figures).
Every ratio compares against a baseline measured in the same run on the same machine.
Timings on shared machines are noisy; compare ratios, not absolute numbers.

Machine: ${env.cpu}, ${env.cores} cores, ${env.memoryGiB} GiB; ${env.platform}; Node ${env.node}; SQLite ${env.sqlite}; commit ${env.commit}.

| suite | benchmark | median | min – max | runs | ratio to baseline | target | run on |
|---|---|---|---|---|---|---|---|
${rows.join('\n')}

## Workloads

${all.map((r) => `- **${r.name}**: ${r.workload}. Warm-up: ${r.warmup}.`).join('\n')}

${readFileSync('bench/compare-notes.md', 'utf8').trim()}
`
writeFileSync(
  LATEST,
  `${JSON.stringify({ date: started.toISOString(), quick, machine: env, results: all }, null, 2)}\n`,
)
writeFileSync('BENCHMARKS.md', md)
process.stdout.write(md)
const missed = results.filter((r) => r.target && !r.target.pass)
if (missed.length > 0) process.stderr.write(`targets missed: ${missed.map((r) => r.name).join(', ')}\n`)
