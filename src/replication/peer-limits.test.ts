import { describe, expect, it } from 'vitest'
import { ChangeRate, DEFAULT_PEER_LIMITS, resolvePeerLimits } from './peer-limits.js'

describe('ChangeRate', () => {
  it('lets a burst through at once, then makes each change wait its share of the rate', () => {
    let now = 0
    const rate = new ChangeRate(100, 50, () => now)
    expect(rate.take(50)).toBe(0)
    expect(rate.take(10)).toBe(100)
    now = 100
    expect(rate.take(0)).toBe(0)
    // A chunk larger than the burst waits for its own share, not forever.
    expect(rate.take(200)).toBe(2000)
    now = 2100
    expect(rate.take(0)).toBe(0)
    // Idle time refills up to the burst, no further.
    now = 100_000
    expect(rate.take(50)).toBe(0)
    expect(rate.take(1)).toBe(10)
  })
})

describe('resolvePeerLimits', () => {
  it('fills in the defaults and refuses anything but positive integers and known names', () => {
    expect(resolvePeerLimits(undefined)).toEqual(DEFAULT_PEER_LIMITS)
    expect(resolvePeerLimits({ maxCollections: 5 })).toEqual({ ...DEFAULT_PEER_LIMITS, maxCollections: 5 })
    for (const bad of [
      { maxCollections: 0 },
      { burstChanges: Number.NaN },
      { maxDocumentBytes: '1' },
      { other: 1 },
      null,
      [],
    ]) {
      expect(() => resolvePeerLimits(bad as never)).toThrow(expect.objectContaining({ code: 'INVALID_OPTIONS' }))
    }
  })
})
