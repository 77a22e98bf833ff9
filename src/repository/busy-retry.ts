import { AbortError } from '../errors.js'

/** True for SQLite's "database is locked" family (another connection holds the lock). */
export function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY')
}

/** How long to wait before retry `attempt` (0-based): exponential from 2 ms to 250 ms, with jitter. */
export function busyBackoffMs(attempt: number): number {
  const base = Math.min(250, 2 * 2 ** Math.min(attempt, 8))
  return Math.round(base / 2 + Math.random() * (base / 2))
}

/** Waits `ms` without blocking the event loop; rejects with `ABORTED` when a signal fires. */
export function delay(ms: number, ...signals: (AbortSignal | undefined)[]): Promise<void> {
  const active = signals.filter((s): s is AbortSignal => s !== undefined)
  const aborted = active.find((s) => s.aborted)
  if (aborted) return Promise.reject(new AbortError(aborted.reason))
  if (ms <= 0 && active.length === 0) return Promise.resolve()
  return new Promise((resolve, reject) => {
    const done = () => {
      clearTimeout(timer)
      for (const s of active) s.removeEventListener('abort', onAbort)
    }
    const onAbort = (event: Event) => {
      done()
      reject(new AbortError((event.target as AbortSignal).reason))
    }
    const timer = setTimeout(() => {
      done()
      resolve()
    }, ms)
    for (const s of active) s.addEventListener('abort', onAbort, { once: true })
  })
}
