import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const dirs: string[] = []

export function tempDir(prefix = 'mm-ditto-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix))
  dirs.push(d)
  return d
}

export function removeTempDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
}

export const FIXTURES = join(import.meta.dirname, 'fixtures')

export interface Child {
  process: ChildProcess
  stdout: () => string
  stderr: () => string
  /** Resolves with the first stdout line that parses as JSON and satisfies `pred`. */
  waitFor(pred: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  kill(): Promise<void>
}

/** Runs a TypeScript fixture in a child Node process. */
export function spawnFixture(name: string, args: string[], env: NodeJS.ProcessEnv = {}): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', join(FIXTURES, name), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  })
  let out = ''
  let err = ''
  const lines: Record<string, unknown>[] = []
  const waiters = new Set<{
    pred: (l: Record<string, unknown>) => boolean
    resolve: (l: Record<string, unknown>) => void
  }>()
  proc.stderr?.on('data', (c: Buffer) => {
    err += c.toString()
  })
  proc.stdout?.on('data', (c: Buffer) => {
    out += c.toString()
    const parts = out.split('\n')
    for (const part of parts.slice(lines.length, parts.length - 1)) {
      let line: Record<string, unknown> = {}
      try {
        line = JSON.parse(part) as Record<string, unknown>
      } catch {
        // not a report line
      }
      lines.push(line)
      for (const w of [...waiters]) {
        if (w.pred(line)) {
          waiters.delete(w)
          w.resolve(line)
        }
      }
    }
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.once('exit', (code, signal) => resolve({ code, signal })),
  )
  return {
    process: proc,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor(pred, timeoutMs = 20_000) {
      const found = lines.find(pred)
      if (found) return Promise.resolve(found)
      return new Promise((resolve, reject) => {
        const w = {
          pred,
          resolve: (l: Record<string, unknown>) => {
            clearTimeout(timer)
            resolve(l)
          },
        }
        const timer = setTimeout(() => {
          waiters.delete(w)
          reject(new Error(`fixture ${name} did not report in time; stderr: ${err}`))
        }, timeoutMs)
        void exited.then(({ code }) =>
          setImmediate(() => reject(new Error(`fixture ${name} exited with ${code}; stderr: ${err}`))),
        )
        waiters.add(w)
      })
    },
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL')
      await exited
    },
  }
}
