import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { clockWall, HybridClock } from './hlc.js'
import { openMesh } from './open-mesh.js'

describe('hybrid logical clock', () => {
  it('issues strictly increasing clocks even when wall time stands still or goes back', () => {
    let now = 1_000_000
    const clock = new HybridClock({ site: 'a', now: () => now, maxDriftMs: 60_000 })
    const seen: string[] = []
    for (let i = 0; i < 50; i++) seen.push(clock.tick())
    now -= 5_000
    for (let i = 0; i < 50; i++) seen.push(clock.tick())
    now += 10_000
    seen.push(clock.tick())
    for (let i = 1; i < seen.length; i++) expect(seen[i]! > seen[i - 1]!).toBe(true)
    expect(clockWall(seen.at(-1)!)).toBe(now)
  })

  it('orders clocks by wall time, then counter, then site', () => {
    const a = new HybridClock({ site: 'a', now: () => 5, maxDriftMs: 0 }).tick()
    const b = new HybridClock({ site: 'b', now: () => 5, maxDriftMs: 0 }).tick()
    const later = new HybridClock({ site: 'a', now: () => 6, maxDriftMs: 0 }).tick()
    expect(a < b).toBe(true)
    expect(b < later).toBe(true)
  })

  it('moves past received clocks within the drift bound, and only up to it beyond', () => {
    const now = 1_000_000
    const local = new HybridClock({ site: 'a', now: () => now, maxDriftMs: 1_000 })
    const near = new HybridClock({ site: 'b', now: () => now + 500, maxDriftMs: 0 }).tick()
    expect(local.observe(near)).toBe(true)
    expect(local.tick() > near).toBe(true)
    const far = new HybridClock({ site: 'c', now: () => now + 3_600_000, maxDriftMs: 0 }).tick()
    expect(local.observe(far)).toBe(false)
    expect(local.driftExceededCount).toBe(1)
    const next = local.tick()
    expect(clockWall(next)).toBeLessThanOrEqual(now + 1_000)
  })
})

describe('a peer whose clock runs far ahead', () => {
  const dirs: string[] = []
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
  })
  const dir = () => {
    const d = mkdtempSync(join(tmpdir(), 'mm-drift-'))
    dirs.push(d)
    return d
  }

  it('is merged and counted, without dragging our clock past the bound', async () => {
    const realNow = Date.now()
    const ahead = await openMesh({ dir: dir(), now: () => realNow + 3_600_000 })
    const mesh = await openMesh({ dir: dir(), now: () => realNow, maxClockDriftMs: 1_000 })
    await ahead.upsert('items', [{ _id: 'a', v: 'future' }])
    await mesh.applyRemote((await ahead.changesFor({}, 0, 10)).changes)
    expect(await mesh.get('items', 'a')).toEqual({ _id: 'a', v: 'future' })
    expect((await mesh.stats()).clockDriftExceeded).toBe(1)
    await mesh.upsert('items', [{ _id: 'b', v: 'now' }])
    const meta = (await mesh.changesFor({}, 0, 10)).changes.find((c) => c.id === 'b')!.meta
    expect(clockWall(meta.t[0]!)).toBeLessThanOrEqual(realNow + 1_000)
    await ahead.close()
    await mesh.close()
  })
})
