// A benchmark helper process that prints one JSON object per line.
import { type ChildProcess, spawn } from 'node:child_process'

export interface JsonChild {
  process: ChildProcess
  /** Every line printed so far. */
  lines: Record<string, unknown>[]
  /** The first line (already printed or to come) that satisfies `pred`. Rejects if the process exits first. */
  waitFor(pred: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>
  /** Exit code, or the signal that ended it. */
  exited: Promise<number | string>
  /** What the process wrote to stderr. */
  stderr(): string
  /** Sends a signal (SIGTERM by default) and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<number | string>
}

/** Starts `node --expose-gc --import tsx <script> ...args` from the repository's root. */
export function spawnJsonChild(script: string, args: readonly string[]): JsonChild {
  const proc = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', script, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const lines: Record<string, unknown>[] = []
  const waiters = new Set<() => void>()
  let buffer = ''
  let err = ''
  let ended = false
  proc.stderr?.on('data', (c: Buffer) => {
    err += c.toString()
  })
  proc.stdout?.on('data', (c: Buffer) => {
    buffer += c.toString()
    const parts = buffer.split('\n')
    buffer = parts.pop() ?? ''
    for (const part of parts) if (part.trim()) lines.push(JSON.parse(part) as Record<string, unknown>)
    for (const w of [...waiters]) w()
  })
  const exited = new Promise<number | string>((resolve) =>
    proc.once('close', (code, signal) => {
      ended = true
      for (const w of [...waiters]) w()
      resolve(code ?? signal ?? 'unknown')
    }),
  )
  return {
    process: proc,
    lines,
    exited,
    stderr: () => err,
    waitFor(pred, timeoutMs = 120_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(new Error(`bench: ${script} printed no expected line within ${timeoutMs} ms`))
        }, timeoutMs)
        const check = () => {
          const found = lines.find(pred)
          if (!found && !ended) return
          clearTimeout(timer)
          waiters.delete(check)
          if (found) resolve(found)
          else reject(new Error(`bench: ${script} exited before the expected line: ${err.slice(-500)}`))
        }
        waiters.add(check)
        check()
      })
    },
    async stop(signal = 'SIGTERM') {
      if (!ended) proc.kill(signal)
      return exited
    },
  }
}
