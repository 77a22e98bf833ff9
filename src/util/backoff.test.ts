import { describe, expect, it } from 'vitest'
import { backoffMs } from './backoff.js'

describe('backoffMs', () => {
  it('doubles from the initial wait and stops at the cap', () => {
    const waits = [0, 1, 2, 3, 4, 5, 6, 7].map((a) => backoffMs(a, { initialMs: 50, maxMs: 5000 }))
    expect(waits).toEqual([50, 100, 200, 400, 800, 1600, 3200, 5000])
    expect(backoffMs(10_000, { initialMs: 50, maxMs: 5000 })).toBe(5000)
    expect(backoffMs(10_000, { initialMs: 0, maxMs: 5000 })).toBe(0)
  })

  it('with jitter, picks a wait in the upper half of the un-jittered one', () => {
    for (let attempt = 0; attempt < 12; attempt++) {
      const base = backoffMs(attempt, { initialMs: 2, maxMs: 250 })
      for (let i = 0; i < 50; i++) {
        const wait = backoffMs(attempt, { initialMs: 2, maxMs: 250, jitter: true })
        expect(wait).toBeGreaterThanOrEqual(base / 2)
        expect(wait).toBeLessThanOrEqual(base)
      }
    }
  })
})
