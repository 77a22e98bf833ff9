import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import Database from 'better-sqlite3'
import fc from 'fast-check'
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest'
import { createProgram } from '../../src/cli/program.js'
import { ErrorCode } from '../../src/errors.js'

/**
 * Every flag of every command fed malformed values, in-process through the
 * real commander program, in a scratch working directory. The property: the
 * command succeeds (the value was a valid one), or it exits non-zero with an
 * error under a stable code, never an internal failure, and writes nothing
 * in the working directory. `FUZZ_RUNS / 10` values per flag (default 100).
 */
const PER_FLAG = Math.max(20, Math.floor(Number(process.env.FUZZ_RUNS ?? 1000) / 10))
const CODES = new Set<string>(Object.values(ErrorCode))
let sandbox: string
const home = process.cwd()

class Exit extends Error {
  constructor(readonly code: number) {
    super(`exit ${code}`)
  }
}

/** Every path under the sandbox with its size: what "nothing written" compares. */
function listing(dir = sandbox): string[] {
  const out: string[] = []
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    const st = statSync(p)
    out.push(`${relative(sandbox, p)} ${st.isDirectory() ? 'dir' : st.size}`)
    if (st.isDirectory()) out.push(...listing(p))
  }
  return out.sort()
}

/** Runs `meshmirror ...args` in-process; returns the exit code and what it printed. */
async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = ''
  let err = ''
  const stdout = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
    out += String(chunk)
    return true
  })
  const stderr = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
    err += String(chunk)
    return true
  })
  const exit = vi.spyOn(process, 'exit').mockImplementation((code) => {
    throw new Exit(Number(code ?? process.exitCode ?? 0))
  })
  let code: number
  try {
    const argv = ['node', 'meshmirror', ...args]
    await createProgram(argv).parseAsync(argv)
    code = Number(process.exitCode ?? 0)
  } catch (error) {
    if (!(error instanceof Exit)) throw error
    code = error.code
  } finally {
    stdout.mockRestore()
    stderr.mockRestore()
    exit.mockRestore()
    process.exitCode = undefined
  }
  return { code, out, err }
}

/** Values a flag may be given: malformed numbers, paths, options, control characters, unicode, long ones. */
const hostile: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '',
    ' ',
    '-',
    '--',
    '--json',
    '-x',
    '=',
    '0',
    '-1',
    '1.5',
    '1e3',
    '0x10',
    ' 42 ',
    'NaN',
    'Infinity',
    '-Infinity',
    '99999999999999999999',
    '65536',
    'null',
    'undefined',
    '__proto__',
    'constructor',
    'app.db',
    'notes.txt',
    'sub',
    'sub/',
    '.',
    '/',
    '/dev/null',
    '\0',
    'a\0b',
    'a\nb',
    '🙂',
    '\u202e',
    'ws://',
    'ws://127.0.0.1:1',
    'builtin',
    'ditto',
    'http://x',
    '24h',
    '-5s',
    '1e9d',
    'x'.repeat(5000),
  ),
  // Random text, kept inside the working directory: no absolute path, no way up.
  fc
    .string({ maxLength: 40 })
    .map((s) => s.replaceAll('..', '._'))
    .map((s) => (s.startsWith('/') || s.startsWith('~') ? `x${s}` : s)),
  fc.integer().map(String),
  fc.double().map(String),
)

interface Flag {
  command: string[]
  flag: string
  /** Other arguments the command needs to get as far as this flag. */
  with?: string[]
  /** A switch (no value): fuzzed as `--flag=value`. */
  boolean?: boolean
  /** Values not to try: valid ones that would start something long (the demo shop). */
  skip?: (value: string) => boolean
  /** Any value is a valid one (a list of directories to keep). */
  anyValue?: boolean
}

const within = (min: number, max: number) => (v: string) =>
  /^\d+(\.\d+)?$/.test(v) && Number(v) >= min && Number(v) <= max

const flags: Flag[] = [
  { command: ['inspect'], flag: '--dir' },
  { command: ['inspect'], flag: '--json', boolean: true, with: ['--dir', 'sub'] },
  { command: ['dirs', 'list'], flag: '--root' },
  { command: ['dirs', 'size'], flag: '--root' },
  { command: ['dirs', 'cleanup'], flag: '--root', with: ['--dry-run'] },
  { command: ['dirs', 'cleanup'], flag: '--older-than', with: ['--root', 'sub', '--dry-run'] },
  { command: ['dirs', 'cleanup'], flag: '--keep', with: ['--root', 'sub', '--dry-run'], anyValue: true },
  { command: ['dirs', 'cleanup'], flag: '--dry-run', boolean: true, with: ['--root', 'sub'] },
  { command: ['doctor'], flag: '--dir' },
  { command: ['generate'], flag: '--registry', with: ['sub'] },
  { command: ['generate'], flag: '--runtime', with: ['sub'] },
  { command: ['generate'], flag: '--check', boolean: true, with: ['sub'] },
  { command: ['generate'], flag: '--watch', boolean: true, with: ['sub'] },
  { command: ['init'], flag: '--database' },
  { command: ['init'], flag: '--out', with: ['--database', 'app.db'] },
  { command: ['init'], flag: '--backend', with: ['--database', 'app.db', '--out', 'made.json'] },
  { command: ['init'], flag: '--port', with: ['--database', 'app.db', '--out', 'made.json'] },
  { command: ['init'], flag: '--peer', with: ['--database', 'app.db', '--out', 'made.json'] },
  { command: ['init'], flag: '--force', boolean: true, with: ['--database', 'app.db', '--out', 'made.json'] },
  { command: ['peer'], flag: '--config' },
  { command: ['peer'], flag: '--json', boolean: true, with: ['--config', 'notes.txt'] },
  { command: ['status'], flag: '--dir' },
  { command: ['parked'], flag: '--config' },
  { command: ['parked'], flag: '--state', with: ['--config', 'notes.txt'] },
  { command: ['parked'], flag: '--limit', with: ['--config', 'notes.txt'] },
  { command: ['conflicts'], flag: '--dir' },
  { command: ['conflicts'], flag: '--config' },
  { command: ['conflicts'], flag: '--collection', with: ['--dir', 'sub'] },
  { command: ['conflicts'], flag: '--limit', with: ['--dir', 'sub'] },
  { command: ['demo'], flag: '--tills', with: ['--duration', '2'], skip: within(2, 16) },
  { command: ['demo'], flag: '--duration', with: ['--tills', '2'], skip: within(2, 3600) },
  { command: ['demo'], flag: '--keep', boolean: true, with: ['--tills', 'x'] },
]

beforeAll(() => {
  sandbox = mkdtempSync(join(tmpdir(), 'mm-cli-fuzz-'))
  const db = new Database(join(sandbox, 'app.db'))
  db.exec('CREATE TABLE customers (id TEXT PRIMARY KEY, name TEXT)')
  db.close()
  writeFileSync(join(sandbox, 'notes.txt'), 'not a config\n')
  mkdirSync(join(sandbox, 'sub'))
  process.chdir(sandbox)
})
afterEach(() => process.chdir(sandbox))
afterAll(() => {
  process.chdir(home)
  rmSync(sandbox, { recursive: true, force: true })
})

describe(`every flag of every command, ${PER_FLAG} malformed values each`, () => {
  it.each(flags.map((f) => [`${f.command.join(' ')} ${f.flag}`, f] as const))('%s', async (_name, f) => {
    const before = listing()
    const outcomes = { ok: 0, refused: 0 }
    await fc.assert(
      fc.asyncProperty(hostile, fc.boolean(), async (value, json) => {
        fc.pre(!f.skip?.(value))
        const args = [
          ...f.command,
          ...(f.with ?? []),
          ...(f.boolean ? [`${f.flag}=${value}`] : [f.flag, value]),
          ...(json && f.flag !== '--json' ? ['--json'] : []),
        ]
        const r = await run(args)
        if (r.code === 0) {
          // A valid value: it may have written what the command writes; put the directory back.
          outcomes.ok++
          for (const line of listing()) {
            const path = line.slice(0, line.lastIndexOf(' '))
            if (!before.includes(line) && !before.some((b) => b.startsWith(`${path} `)))
              rmSync(join(sandbox, path), { recursive: true, force: true })
          }
          return
        }
        outcomes.refused++
        const where = `meshmirror ${args.map((a) => JSON.stringify(a)).join(' ')}\nstdout: ${r.out.slice(0, 500)}\nstderr: ${r.err.slice(0, 500)}`
        // Never an internal failure: a wrong value is the user's, and says so under a stable code.
        expect([1, 3], where).toContain(r.code)
        if (r.code === 1) {
          const code = /^\{"error":\{"code":"([A-Z_]+)"/m.exec(r.out)?.[1] ?? /^error \[([A-Z_]+)\]/m.exec(r.err)?.[1]
          expect(CODES, where).toContain(code)
        }
        expect(listing(), where).toEqual(before)
      }),
      { numRuns: PER_FLAG },
    )
    // The valid values are few: most were refused.
    if (!f.anyValue) expect(outcomes.refused).toBeGreaterThan(0)
  })
})
