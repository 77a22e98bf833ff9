import { describe, expect, it } from 'vitest'
import type { RemoteChange } from '../engine/types.js'
import { ChangeRate, DEFAULT_PEER_LIMITS, documentLimitProblem, resolvePeerLimits } from './peer-limits.js'

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

describe('documentLimitProblem', () => {
  it("hands on the JSON it measured of each live document, at the change's index", () => {
    const meta = { t: ['c'], i: 0, f: {}, v: { a: 1 } }
    const changes = [
      { collection: 'c', id: 'a', doc: { _id: 'a', s: 'é\n', n: [1, { x: null }] }, meta },
      { collection: 'c', id: 'b', doc: null, meta: { ...meta, d: 0, h: { kept: 1 } } },
      { collection: 'c', id: 'c', doc: { _id: 'c' }, meta },
    ] as unknown as RemoteChange[]
    const docJson: (string | undefined)[] = []
    expect(documentLimitProblem(changes, { ...DEFAULT_PEER_LIMITS }, docJson)).toBeUndefined()
    expect(docJson).toEqual([JSON.stringify(changes[0]!.doc), undefined, '{"_id":"c"}'])
    expect(1 in docJson).toBe(false)
  })
})
