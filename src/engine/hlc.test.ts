import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { clockWall, compareClocks, HybridClock, isClock } from './hlc.js'
import { openBuiltinStore } from './open-builtin-store.js'
import type { BuiltinMesh } from './types.js'

const MAX_COUNTER = 36 ** 4 - 1

/** The clock string of `(wall, counter, site)`, as the format defines it. */
function clockOf(wall: number, counter: number, site: string): string {
  return wall.toString(36).padStart(9, '0') + counter.toString(36).padStart(4, '0') + site
}

function counterOf(clock: string): number {
  return Number.parseInt(clock.slice(9, 13), 36)
}

describe('hybrid logical clock', () => {
  it('encodes (wall, counter, site) in the documented fixed-width format', () => {
    let now = 1_700_000_000_000
    const clock = new HybridClock({ site: 'till-1', now: () => now, maxDriftMs: 0 })
    expect(clock.tick()).toBe(clockOf(now, 0, 'till-1'))
    expect(clock.tick()).toBe(clockOf(now, 1, 'till-1'))
    now += 1
    const c = clock.tick()
    expect(c).toBe(clockOf(now, 0, 'till-1'))
    expect(isClock(c)).toBe(true)
    expect(clockWall(c)).toBe(now)
    expect(clock.last()).toBe(c)
  })

  it('issues strictly increasing clocks while wall time steps, stands still or goes back', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ kind: fc.constant('step' as const), by: fc.integer({ min: -100_000, max: 100_000 }) }),
            fc.record({ kind: fc.constant('tick' as const), n: fc.integer({ min: 1, max: 5 }) }),
          ),
          { maxLength: 60 },
        ),
        (steps) => {
          let now = 1_700_000_000_000
          let maxNow = now
          const clock = new HybridClock({ site: 'a', now: () => now, maxDriftMs: 1_000 })
          let prev = ''
          for (const s of steps) {
            if (s.kind === 'step') {
              now += s.by
              maxNow = Math.max(maxNow, now)
              continue
            }
            for (let i = 0; i < s.n; i++) {
              const c = clock.tick()
              expect(compareClocks(c, prev)).toBe(1)
              // Without received clocks, the wall part never runs ahead of the latest wall time seen.
              expect(clockWall(c)).toBeLessThanOrEqual(maxNow)
              prev = c
            }
          }
        },
      ),
      { numRuns: 200 },
    )
  })

  it('rolls the logical counter over into the wall part without going back', () => {
    const now = 1_700_000_000_000
    const clock = new HybridClock({ site: 'a', now: () => now, maxDriftMs: 0 })
    let prev = clock.tick()
    expect(prev).toBe(clockOf(now, 0, 'a'))
    for (let i = 1; i <= MAX_COUNTER; i++) {
      const c = clock.tick()
      if (c <= prev) throw new Error(`clock went back at tick ${i}: ${c} after ${prev}`)
      prev = c
    }
    expect(prev).toBe(clockOf(now, MAX_COUNTER, 'a'))
    const rolled = clock.tick()
    expect(rolled).toBe(clockOf(now + 1, 0, 'a'))
    expect(rolled > prev).toBe(true)
    expect(clock.tick()).toBe(clockOf(now + 1, 1, 'a'))
  })

  it('rolls over when a received clock holds the largest counter', () => {
    const now = 1_700_000_000_000
    const clock = new HybridClock({ site: 'a', now: () => now, maxDriftMs: 1_000 })
    const remote = clockOf(now, MAX_COUNTER, 'b')
    expect(clock.observe(remote)).toBe(true)
    const next = clock.tick()
    expect(next).toBe(clockOf(now + 1, 0, 'a'))
    expect(next > remote).toBe(true)
  })

  it('moves past a received clock that is ahead within the drift bound', () => {
    const now = 1_700_000_000_000
    const clock = new HybridClock({ site: 'a', now: () => now, maxDriftMs: 1_000 })
    clock.tick()
    const remote = clockOf(now + 500, 7, 'b')
    expect(clock.observe(remote)).toBe(true)
    expect(clock.driftExceededCount).toBe(0)
    expect(clock.last()).toBe(clockOf(now + 500, 7, 'a'))
    const next = clock.tick()
    expect(next).toBe(clockOf(now + 500, 8, 'a'))
    expect(next > remote).toBe(true)
    // Exactly at the bound is still within it.
    expect(clock.observe(clockOf(now + 1_000, 3, 'c'))).toBe(true)
    expect(clock.tick()).toBe(clockOf(now + 1_000, 4, 'a'))
    expect(clock.driftExceededCount).toBe(0)
  })

  it('ignores a received clock that is behind', () => {
    const now = 1_700_000_000_000
    const clock = new HybridClock({ site: 'a', now: () => now, maxDriftMs: 1_000 })
    const mine = clock.tick()
    expect(clock.observe(clockOf(now - 10, 99, 'b'))).toBe(true)
    expect(clock.last()).toBe(mine)
  })

  it('stops at now + bound for a received clock beyond it, and counts each one', () => {
    let now = 1_700_000_000_000
    const bound = 1_000
    const clock = new HybridClock({ site: 'a', now: () => now, maxDriftMs: bound })
    const far = clockOf(now + 3_600_000, 5, 'b')
    expect(clock.observe(far)).toBe(false)
    expect(clock.driftExceededCount).toBe(1)
    const next = clock.tick()
    expect(clockWall(next)).toBe(now + bound)
    expect(next < far).toBe(true)
    // Another one does not drag it further either.
    expect(clock.observe(clockOf(now + 7_200_000, 0, 'c'))).toBe(false)
    expect(clock.driftExceededCount).toBe(2)
    expect(clockWall(clock.tick())).toBe(now + bound)
    // A clock within the bound is not counted.
    expect(clock.observe(clockOf(now + 10, 0, 'd'))).toBe(true)
    expect(clock.driftExceededCount).toBe(2)
    // Once wall time passes it, the clock follows wall time again.
    now += 5_000
    expect(clock.tick()).toBe(clockOf(now, 0, 'a'))
  })

  it('never runs more than the bound ahead of the latest wall time, whatever it receives', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.record({ kind: fc.constant('step' as const), by: fc.integer({ min: -5_000, max: 5_000 }) }),
            fc.record({ kind: fc.constant('tick' as const) }),
            fc.record({
              kind: fc.constant('receive' as const),
              ahead: fc.integer({ min: -10_000, max: 100_000 }),
              counter: fc.integer({ min: 0, max: MAX_COUNTER }),
            }),
          ),
          { maxLength: 60 },
        ),
        (steps) => {
          const bound = 2_000
          let now = 1_700_000_000_000
          let maxNow = now
          const clock = new HybridClock({ site: 'a', now: () => now, maxDriftMs: bound })
          let prev = ''
          let beyond = 0
          for (const s of steps) {
            if (s.kind === 'step') {
              now += s.by
              maxNow = Math.max(maxNow, now)
            } else if (s.kind === 'receive') {
              const ok = clock.observe(clockOf(now + s.ahead, s.counter, 'b'))
              expect(ok).toBe(s.ahead <= bound)
              if (!ok) beyond++
            } else {
              const c = clock.tick()
              expect(c > prev).toBe(true)
              // +1: a counter roll-over may add one millisecond.
              expect(clockWall(c)).toBeLessThanOrEqual(maxNow + bound + 1)
              prev = c
            }
          }
          expect(clock.driftExceededCount).toBe(beyond)
        },
      ),
      { numRuns: 200 },
    )
  })

  it('restored from its last clock, keeps moving forward even when wall time has gone back past the bound', () => {
    const then = 1_700_000_000_000
    const before = new HybridClock({ site: 'a', now: () => then, maxDriftMs: 1_000 })
    const last = before.tick()
    // Restarted after the wall clock was set back an hour.
    const after = new HybridClock({ site: 'a', now: () => then - 3_600_000, maxDriftMs: 1_000 }, last)
    const next = after.tick()
    expect(next > last).toBe(true)
    expect(after.driftExceededCount).toBe(0)
  })

  it('orders clock strings as (wall, counter, site) tuples', () => {
    const site = fc.stringMatching(/^[A-Za-z0-9_-]{1,8}$/)
    const stamp = fc.record({
      wall: fc.oneof(fc.integer({ min: 1, max: 2_000 }), fc.integer({ min: 1, max: 36 ** 9 - 1 })),
      counter: fc.oneof(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: MAX_COUNTER })),
      site,
    })
    const tupleOrder = (a: typeof stamp extends fc.Arbitrary<infer T> ? T : never, b: typeof a): number => {
      if (a.wall !== b.wall) return a.wall < b.wall ? -1 : 1
      if (a.counter !== b.counter) return a.counter < b.counter ? -1 : 1
      return a.site < b.site ? -1 : a.site > b.site ? 1 : 0
    }
    fc.assert(
      fc.property(stamp, stamp, (a, b) => {
        // Built by a clock of that site: received at (wall, counter - 1), then ticked.
        const make = (s: typeof a): string => {
          const clock = new HybridClock({ site: s.site, now: () => s.wall, maxDriftMs: 0 })
          if (s.counter > 0) clock.observe(clockOf(s.wall, s.counter - 1, 'x'))
          const c = clock.tick()
          expect(c).toBe(clockOf(s.wall, s.counter, s.site))
          expect(clockWall(c)).toBe(s.wall)
          expect(counterOf(c)).toBe(s.counter)
          return c
        }
        expect(compareClocks(make(a), make(b))).toBe(tupleOrder(a, b))
      }),
      { numRuns: 500 },
    )
  })
})

describe('a peer whose clock runs far ahead', () => {
  const dirs: string[] = []
  const open: BuiltinMesh[] = []
  afterEach(async () => {
    for (const m of open.splice(0)) await m.close()
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
  })
  const mesh = async (siteId: string, now: () => number, maxClockDriftMs?: number) => {
    const dir = mkdtempSync(join(tmpdir(), 'mm-drift-'))
    dirs.push(dir)
    const m = await openBuiltinStore({
      dir,
      siteId,
      now,
      ...(maxClockDriftMs === undefined ? {} : { maxClockDriftMs }),
    })
    open.push(m)
    return m
  }
  const pull = async (from: BuiltinMesh, to: BuiltinMesh) => {
    const chunk = await from.changesFor(await to.versionVector(), 0, 1000)
    expect(chunk.complete).toBe(true)
    await to.applyRemote(chunk.changes, {
      from: from.siteId,
      cursor: chunk.cursor,
      versionVector: chunk.versionVector,
    })
  }

  it('is merged and counted, without dragging our clock past the bound', async () => {
    const realNow = 1_700_000_000_000
    const ahead = await mesh('ahead', () => realNow + 3_600_000)
    const local = await mesh('local', () => realNow, 1_000)
    await ahead.upsert('items', [{ _id: 'a', v: 'future' }])
    await pull(ahead, local)
    expect(await local.get('items', 'a')).toEqual({ _id: 'a', v: 'future' })
    expect((await local.stats()).clockDriftExceeded).toBe(1)
    await local.upsert('items', [{ _id: 'b', v: 'now' }])
    const meta = (await local.changesFor({}, 0, 10)).changes.find((c) => c.id === 'b')!.meta
    expect(clockWall(meta.t[0]!)).toBe(realNow + 1_000)
  })

  it('lets a write made after the far-ahead peer writes win over it, and leaves replicas agreeing', async () => {
    const realNow = 1_700_000_000_000
    const ahead = await mesh('ahead', () => realNow + 3_600_000)
    const local = await mesh('local', () => realNow)
    await ahead.upsert('items', [
      { _id: 'a', price: 1, name: 'tea' },
      { _id: 'b', v: 0 },
    ])
    await ahead.increment('items', 'a', 'qty', 5)
    await ahead.remove('items', ['b'])
    await pull(ahead, local)
    // Written after what they change was seen: they win whatever the clocks say.
    await local.upsert('items', [
      { _id: 'a', price: 2, note: 'ours' },
      { _id: 'b', v: 2 },
      { _id: 'c', v: 3 },
    ])
    await local.increment('items', 'a', 'qty', -1)
    for (let i = 0; i < 2; i++) {
      await pull(local, ahead)
      await pull(ahead, local)
    }
    const docs = await local.find({ collection: 'items' })
    expect(await ahead.find({ collection: 'items' })).toEqual(docs)
    expect(await ahead.versionVector()).toEqual(await local.versionVector())
    expect(docs).toEqual([
      { _id: 'a', price: 2, name: 'tea', note: 'ours', qty: 4 },
      { _id: 'b', v: 2 },
      { _id: 'c', v: 3 },
    ])
    // Only writing over the far-ahead document moved our clock; a received clock alone does not.
    const meta = (await local.changesFor({}, 0, 10)).changes.find((c) => c.id === 'c')!.meta
    expect(clockWall(meta.t[0]!)).toBeGreaterThanOrEqual(realNow + 3_600_000)
  })

  it('lets a peer whose clock runs far behind overwrite and remove what it has seen', async () => {
    const realNow = 1_700_000_000_000
    const normal = await mesh('normal', () => realNow)
    const behind = await mesh('behind', () => realNow - 600_000)
    await normal.upsert('customers', [
      { _id: 'c1', note: 'from the shop floor' },
      { _id: 'c2', note: 'to void' },
    ])
    await pull(normal, behind)
    await behind.upsert('customers', [{ _id: 'c1', note: 'corrected at the till' }])
    await behind.remove('customers', ['c2'])
    await pull(behind, normal)
    await pull(normal, behind)
    for (const m of [normal, behind]) {
      expect(await m.find({ collection: 'customers' })).toEqual([{ _id: 'c1', note: 'corrected at the till' }])
    }
  })
})
