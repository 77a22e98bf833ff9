import { type ChildProcess, spawn } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { createInterface } from 'node:readline'

export const ROOT = resolve(import.meta.dirname, '../..')

/** A `meshmirror` command in its own process, with its stdout lines. */
export interface CliProcess {
  child: ChildProcess
  lines: string[]
  /** The first stdout line (past or future) matching `pred`. */
  line(pred: (line: string) => boolean, timeoutMs?: number): Promise<string>
  /** The first JSON event line of a kind (`--json` mode). */
  event(kind: string, pred?: (e: Record<string, unknown>) => boolean): Promise<Record<string, unknown>>
  exited: Promise<number | null>
  stdout(): string
  stderr(): string
}

/** How to run the command: extra environment, and Node flags before the script (e.g. `--import` hooks). */
export interface CliOptions {
  env?: NodeJS.ProcessEnv
  nodeArgs?: string[]
}

export function startCli(args: string[], options: CliOptions = {}): CliProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', ...(options.nodeArgs ?? []), 'src/cli/main.ts', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(options.env ? { env: { ...process.env, ...options.env } } : {}),
  })
  const lines: string[] = []
  const waiters: { pred: (l: string) => boolean; resolve: (l: string) => void }[] = []
  let err = ''
  child.stderr!.on('data', (d) => {
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
  const exited = new Promise<number | null>((r) => child.once('close', (code) => r(code)))
  const line = (pred: (l: string) => boolean, timeoutMs = 30_000) =>
    new Promise<string>((resolveLine, reject) => {
      const found = lines.find(pred)
      if (found !== undefined) return resolveLine(found)
      const timer = setTimeout(
        () =>
          reject(new Error(`no matching line within ${timeoutMs} ms; stdout:\n${lines.join('\n')}\nstderr:\n${err}`)),
        timeoutMs,
      )
      waiters.push({
        pred,
        resolve: (l) => {
          clearTimeout(timer)
          resolveLine(l)
        },
      })
      void exited.then(() => {
        // Let lines still in the pipe arrive first.
        setImmediate(() => {
          if (!waiters.some((w) => w.pred === pred)) return
          clearTimeout(timer)
          reject(new Error(`exited before a matching line; stdout:\n${lines.join('\n')}\nstderr:\n${err}`))
        })
      })
    })
  const parse = (l: string) => {
    try {
      return JSON.parse(l) as Record<string, unknown>
    } catch {
      return undefined
    }
  }
  return {
    child,
    lines,
    line,
    event: async (kind, pred = () => true) => {
      const l = await line((x) => {
        const e = parse(x)
        return e?.event === kind && pred(e)
      })
      return parse(l)!
    },
    exited,
    stdout: () => lines.join('\n'),
    stderr: () => err,
  }
}

/** Runs a command to its end. */
export async function runCli(
  args: string[],
  options: CliOptions = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = startCli(args, options)
  const code = await p.exited
  await new Promise((r) => setImmediate(r))
  return { code, stdout: p.stdout(), stderr: p.stderr() }
}

/** Writes a config file `<name>.config.json` in `dir`; returns its path. */
export function writeConfig(dir: string, name: string, config: Record<string, unknown>): string {
  const file = join(dir, `${name}.config.json`)
  writeFileSync(file, JSON.stringify(config, null, 2))
  return file
}
