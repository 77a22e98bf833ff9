import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const dirs: string[] = []

export function tempRoot(prefix = 'mm-inst-'): string {
  const d = mkdtempSync(join(tmpdir(), prefix))
  dirs.push(d)
  return d
}

export function removeTempRoots(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
}

export interface Child {
  process: ChildProcess
  /** Every JSON line printed so far. */
  lines: Record<string, unknown>[]
  /** Resolves with the first line that satisfies `pred`. */
  waitFor(pred: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>
  exited: Promise<number | null>
  kill(signal?: NodeJS.Signals): Promise<void>
}

export function spawnFixture(script: string, args: string[]): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: Record<string, unknown>[] = []
  const waiters: { pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] = []
  let buffer = ''
  let stderr = ''
  proc.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString()
  })
  proc.stdout?.on('data', (c: Buffer) => {
    buffer += c.toString()
    const parts = buffer.split('\n')
    buffer = parts.pop() ?? ''
    for (const part of parts) {
      if (!part.trim()) continue
      const line = JSON.parse(part) as Record<string, unknown>
      lines.push(line)
      for (const w of [...waiters]) {
        if (w.pred(line)) {
          waiters.splice(waiters.indexOf(w), 1)
          w.resolve(line)
        }
      }
    }
  })
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  return {
    process: proc,
    lines,
    exited,
    waitFor(pred, timeoutMs = 20_000) {
      const found = lines.find(pred)
      if (found) return Promise.resolve(found)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`fixture did not report in time; stderr: ${stderr}`)),
          timeoutMs,
        )
        void exited.then((code) =>
          setImmediate(() => reject(new Error(`fixture exited with ${code} before reporting; stderr: ${stderr}`))),
        )
        waiters.push({
          pred,
          resolve: (l) => {
            clearTimeout(timer)
            resolve(l)
          },
        })
      })
    },
    async kill(signal = 'SIGKILL') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal)
      await exited
    },
  }
}

export const HOLDER = 'test/instance/fixtures/holder.ts'
