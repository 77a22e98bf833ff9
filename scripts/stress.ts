/**
 * Runs the test suite several times with CPU-bound processes beside it, to
 * bring out tests that depend on timing (a race that a fast, idle machine
 * always wins). Exits 1 when any run failed, listing what failed in which run.
 *
 *   npm run test:stress                         # the whole suite, 3 times, one busy process beside it
 *   npm run test:stress -- --runs 5 --hogs 2    # 5 times, 2 busy processes
 *   npm run test:stress -- --runs 2 test/cli    # any further arguments go to vitest (a subset)
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { resolve } from 'node:path'

const ROOT = resolve(import.meta.dirname, '..')

function option(args: string[], name: string, fallback: number): number {
  const at = args.indexOf(name)
  if (at === -1) return fallback
  const value = Number(args[at + 1])
  if (!Number.isSafeInteger(value) || value < 0) {
    console.error(`${name} needs a whole number, got ${args[at + 1]}`)
    process.exit(2)
  }
  args.splice(at, 2)
  return value
}

const args = process.argv.slice(2)
const runs = Math.max(1, option(args, '--runs', 3))
const hogs = option(args, '--hogs', 1)

/** A process that keeps one core busy until killed. */
function hog(): ChildProcess {
  return spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' })
}

function vitest(): Promise<{ code: number | null; failed: string[] }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [resolve(ROOT, 'node_modules/vitest/vitest.mjs'), 'run', ...args], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
    })
    const failed: string[] = []
    let pending = ''
    child.stdout?.on('data', (chunk: Buffer) => {
      process.stdout.write(chunk)
      pending += chunk.toString()
      const lines = pending.split('\n')
      pending = lines.pop() ?? ''
      for (const line of lines) if (/^\s*FAIL\s/.test(line)) failed.push(line.trim())
    })
    child.on('close', (code) => done({ code, failed }))
  })
}

const busy = Array.from({ length: hogs }, hog)
const stop = () => {
  for (const h of busy) h.kill('SIGKILL')
}
process.on('SIGINT', () => {
  stop()
  process.exit(130)
})

const results: { run: number; code: number | null; failed: string[] }[] = []
try {
  for (let run = 1; run <= runs; run++) {
    console.log(`\n=== stress run ${run} of ${runs}, ${hogs} busy process${hogs === 1 ? '' : 'es'} beside it`)
    results.push({ run, ...(await vitest()) })
  }
} finally {
  stop()
}

console.log('\n=== stress summary')
for (const r of results) {
  console.log(`run ${r.run}: ${r.code === 0 ? 'passed' : `failed (exit ${r.code})`}`)
  for (const f of [...new Set(r.failed)]) console.log(`  ${f}`)
}
process.exit(results.every((r) => r.code === 0) ? 0 : 1)
