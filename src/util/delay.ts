import { AbortError } from '../errors.js'

/**
 * Waits `ms` without blocking the event loop; rejects with `ABORTED` when one
 * of the signals fires (at once if one already has). Undefined signals are
 * skipped, so optional ones can be passed as they are.
 */
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
