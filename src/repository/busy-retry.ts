import { backoffMs } from '../util/backoff.js'

/** True for SQLite's "database is locked" family (another connection holds the lock). */
export function isBusy(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY')
}

/** How long to wait before retry `attempt` (0-based): exponential from 2 ms to 250 ms, with jitter. */
export function busyBackoffMs(attempt: number): number {
  return Math.round(backoffMs(attempt, { initialMs: 2, maxMs: 250, jitter: true }))
}
