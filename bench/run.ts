// Runs the benchmarks: `npm run bench [-- --quick] [suite...]`.
// Writes bench/results/latest.json and BENCHMARKS.md.
import { writeFileSync } from 'node:fs'
import Database from 'better-sqlite3'
import { engineSuite } from './engine.bench.js'
import { type BenchResult, type BenchSuite, machine, makeContext } from './harness.js'
import { instanceSuite } from './instance.bench.js'

const suites: BenchSuite[] = [engineSuite, instanceSuite]

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

const fmt = (n: number) => (Math.abs(n) >= 100 ? Math.round(n).toLocaleString('en') : n.toPrecision(3))
const rows = results.map(
  (r) =>
    `| ${r.suite} | ${r.name} | ${fmt(r.median)} ${r.unit} | ${fmt(r.min)} – ${fmt(r.max)} | ${r.runs} | ${
      r.ratio === undefined ? '' : `${r.ratio.toFixed(2)}× ${r.baseline?.name}`
    } | ${r.target ? `${r.target.pass ? 'met' : 'MISSED'}: ${r.target.description}` : ''} |`,
)
const md = `# Benchmarks

Produced by \`npm run bench${quick ? ' -- --quick' : ''}\` on ${started.toISOString().slice(0, 10)}.
Every ratio compares against a baseline measured in the same run on the same machine.
Timings on shared machines are noisy; compare ratios, not absolute numbers.

Machine: ${env.cpu}, ${env.cores} cores, ${env.memoryGiB} GiB; ${env.platform}; Node ${env.node}; SQLite ${env.sqlite}; commit ${env.commit}.

| suite | benchmark | median | min – max | runs | ratio to baseline | target |
|---|---|---|---|---|---|---|
${rows.join('\n')}

## Workloads

${results.map((r) => `- **${r.name}**: ${r.workload}. Warm-up: ${r.warmup}.`).join('\n')}
`
writeFileSync(
  'bench/results/latest.json',
  `${JSON.stringify({ date: started.toISOString(), quick, machine: env, results }, null, 2)}\n`,
)
writeFileSync('BENCHMARKS.md', md)
process.stdout.write(md)
const missed = results.filter((r) => r.target && !r.target.pass)
if (missed.length > 0) process.stderr.write(`targets missed: ${missed.map((r) => r.name).join(', ')}\n`)
