import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'

/** Polls `fn` until it returns a truthy value; fails after `timeout` ms with `message`. */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  {
    timeout = 15_000,
    interval = 5,
    message = 'condition',
  }: { timeout?: number; interval?: number; message?: string } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeout
  let last: unknown
  for (;;) {
    try {
      const v = await fn()
      if (v) return v as NonNullable<T>
    } catch (e) {
      last = e
    }
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeout} ms waiting for ${message}${last ? `: ${String(last)}` : ''}`)
    }
    await new Promise((r) => setTimeout(r, interval))
  }
}

/** A fresh temporary directory; `cleanup()` removes every one made. */
export function tempDirs(): { make(prefix?: string): string; cleanup(): void } {
  const dirs: string[] = []
  return {
    make(prefix = 'bridge') {
      const d = mkdtempSync(join(tmpdir(), `mm-${prefix}-`))
      dirs.push(d)
      return d
    },
    cleanup() {
      for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
    },
  }
}

const ROOT = resolve(import.meta.dirname, '../../..')

/** A fixture script running in its own Node process, with its stdout lines. */
export interface Fixture {
  child: ChildProcess
  lines: string[]
  /** Resolves with the first line (already printed or future) matching `pred`. */
  line(pred: (line: string) => boolean, timeout?: number): Promise<string>
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>
  stderr(): string
}

/** Runs `test/bridge/fixtures/<name>.ts` with tsx in a child process. */
export function runFixture(name: string, args: string[]): Fixture {
  const child = spawn(process.execPath, ['--import', 'tsx', `test/bridge/fixtures/${name}.ts`, ...args], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  const lines: string[] = []
  const waiters: { pred: (l: string) => boolean; resolve: (l: string) => void }[] = []
  let err = ''
  child.stderr?.on('data', (d) => {
    err += String(d)
  })
  createInterface({ input: child.stdout! }).on('line', (l) => {
    lines.push(l)
    for (const w of [...waiters]) {
      if (w.pred(l)) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve(l)
      }
    }
  })
  const exited = new Promise<number | string>((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)),
  )
  return {
    child,
    lines,
    exited,
    stderr: () => err,
    line(pred, timeout = 20_000) {
      const found = lines.find(pred)
      if (found !== undefined) return Promise.resolve(found)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`fixture ${name}: no matching line after ${timeout} ms. stderr: ${err}`)),
          timeout,
        )
        waiters.push({
          pred,
          resolve: (l) => {
            clearTimeout(timer)
            resolve(l)
          },
        })
        void exited.then((code) => {
          clearTimeout(timer)
          reject(new Error(`fixture ${name} exited (${code}) before a matching line. stderr: ${err}`))
        })
      })
    },
  }
}
