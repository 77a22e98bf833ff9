import { MeshmirrorError } from '../errors.js'

/** Where a command writes: stdout for results, stderr for errors. */
export interface Output {
  json: boolean
  out(text: string): void
  err(text: string): void
}

export function makeOutput(json: boolean): Output {
  return {
    json,
    out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
    err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
  }
}

/** Exit codes of the `meshmirror` command. */
export const ExitCode = {
  OK: 0,
  /** A meshmirror error (bad input, a held lock, an unusable store). */
  ERROR: 1,
  /** An unexpected failure. */
  INTERNAL: 2,
  /** `doctor`: the directory is a mesh directory but cannot be opened now (in use, unreadable). */
  NEEDS_ATTENTION: 3,
  /** `demo`: the tills did not converge. */
  NOT_CONVERGED: 4,
} as const

/** Prints an error the way every command does and returns the exit code. */
export function reportError(output: Output, error: unknown): number {
  if (error instanceof MeshmirrorError) {
    if (output.json)
      output.out(JSON.stringify({ error: { code: error.code, message: error.message, details: error.details } }))
    else output.err(`error [${error.code}]: ${error.message}`)
    return ExitCode.ERROR
  }
  const message = error instanceof Error ? (error.stack ?? error.message) : String(error)
  if (output.json) output.out(JSON.stringify({ error: { code: 'INTERNAL', message } }))
  else output.err(`internal error: ${message}`)
  return ExitCode.INTERNAL
}

/** Formats a byte count for people. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = n
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`
}
