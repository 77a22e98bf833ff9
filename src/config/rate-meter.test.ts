import { describe, expect, it } from 'vitest'
import { RateMeter } from './rate-meter.js'

describe('RateMeter', () => {
  it('measures the growth per second since the last measurement', () => {
    const meter = new RateMeter(10_000)
    expect(meter.read(50, 10_500)).toBe(100)
    expect(meter.read(50, 11_500)).toBe(0)
    expect(meter.read(350, 13_500)).toBe(150)
  })

  it('keeps the last rate for a reading sooner than the minimum interval', () => {
    const meter = new RateMeter(0, 1000)
    expect(meter.read(0, 999)).toBe(0)
    expect(meter.read(20, 1000)).toBe(20)
    expect(meter.read(500, 1999)).toBe(20)
    // The reading that was too soon did not move the start of the next interval.
    expect(meter.read(500, 2000)).toBe(480)
  })

  it('starts from a count of 0 with a rate of 0', () => {
    const meter = new RateMeter(5_000)
    expect(meter.read(0, 5_000)).toBe(0)
    expect(meter.read(7, 5_499)).toBe(0)
    expect(meter.read(7, 5_500)).toBe(14)
  })
})
