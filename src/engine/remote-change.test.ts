import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { openBuiltinStore } from './open-builtin-store.js'
import type { BuiltinMesh, RemoteChange } from './types.js'

describe('applyRemote with hostile or malformed changes', () => {
  let dirs: string[] = []
  let source: BuiltinMesh
  let target: BuiltinMesh
  let good: RemoteChange

  beforeEach(async () => {
    dirs = [mkdtempSync(join(tmpdir(), 'mm-rc-')), mkdtempSync(join(tmpdir(), 'mm-rc-'))]
    source = await openBuiltinStore({ dir: dirs[0]!, siteId: 'src' })
    target = await openBuiltinStore({ dir: dirs[1]!, siteId: 'dst' })
    await source.upsert('items', [{ _id: 'a', v: 1 }])
    await source.increment('items', 'a', 'n', 2)
    good = (await source.changesFor({}, 0, 10)).changes[0]!
  })
  afterEach(async () => {
    await source.close()
    await target.close()
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })

  /** A clock one step later than `clock`, of another site. */
  const later = (clock: string) => `${clock.slice(0, 9)}zzzzother`
  // biome-ignore lint/suspicious/noExplicitAny: tests build deliberately ill-typed changes
  type Loose = Record<string, any>
  const mutate = (f: (c: Loose) => void): RemoteChange => {
    const c = structuredClone(good) as unknown as Loose
    f(c)
    return c as unknown as RemoteChange
  }

  const bad: [string, () => unknown][] = [
    ['not an object', () => 'x'],
    ['injected collection', () => mutate((c) => (c.collection = "items'; DROP TABLE docs; --"))],
    ['numeric id', () => mutate((c) => (c.id = 5))],
    ['meta missing', () => mutate((c) => delete c.meta)],
    ['clock index out of range', () => mutate((c) => (c.meta.i = 99))],
    ['malformed clock', () => mutate((c) => (c.meta.t = ['not-a-clock']))],
    ['field clock index out of range', () => mutate((c) => (c.meta.f = { v: 7 }))],
    ['bad site in versions', () => mutate((c) => (c.meta.v = { 'bad site!': 1 }))],
    ['negative version', () => mutate((c) => (c.meta.v = { src: -1 }))],
    ['counter entry malformed', () => mutate((c) => (c.meta.n = { n: { s: { src: ['x', 'y'] } } }))],
    ['prototype key in document', () => mutate((c) => (c.doc = JSON.parse('{"_id":"a","__proto__":{"x":1}}')))],
    ['field with a dot', () => mutate((c) => (c.doc['a.b'] = 1))],
    ['doc id mismatch', () => mutate((c) => (c.doc._id = 'other'))],
    ['live without content', () => mutate((c) => (c.doc = null))],
    ['oversized document', () => mutate((c) => (c.doc.big = 'x'.repeat(2 * 1024 * 1024)))],
    ['non-JSON number', () => mutate((c) => (c.doc.v = Number.NaN))],
    ['bad site in creation context', () => mutate((c) => (c.meta.cx = { 'bad site!': 1 }))],
    ['predecessor index out of range', () => mutate((c) => (c.meta.p = { v: 7 }))],
    ['predecessor of a bad field', () => mutate((c) => (c.meta.p = { 'a.b': 0 }))],
    ['collisions not a list', () => mutate((c) => (c.meta.x = { a: 1 }))],
    ['collision whose winner is older', () => mutate((c) => (c.meta.x = [[c.meta.t[0], later(c.meta.t[0]), {}, {}]]))],
    [
      'collision with a non-JSON content',
      () => mutate((c) => (c.meta.x = [[later(c.meta.t[0]), c.meta.t[0], {}, { v: Number.NaN }]])),
    ],
    [
      'collision with an oversized content',
      () => mutate((c) => (c.meta.x = [[later(c.meta.t[0]), c.meta.t[0], { big: 'x'.repeat(2 * 1024 * 1024) }, {}]])),
    ],
  ]

  it.each(bad)('rejects %s with INVALID_CHANGE and applies nothing of the batch', async (_name, make) => {
    const batch = [good, make()] as RemoteChange[]
    await expect(
      target.applyRemote(batch, { from: 'src', cursor: 5, versionVector: { src: 9 } }),
    ).rejects.toMatchObject({
      code: 'INVALID_CHANGE',
    })
    expect(await target.find({ collection: 'items' })).toEqual([])
    expect(await target.versionVector()).toEqual({})
    expect(await target.peerCursor('src')).toBe(0)
    expect((await target.stats()).sequence).toBe(0)
  })

  it('applies the well-formed batch, idempotently', async () => {
    expect(await target.applyRemote([good])).toMatchObject({ applied: 1, unchanged: 0 })
    expect(await target.applyRemote([good])).toMatchObject({ applied: 0, unchanged: 1 })
    expect(await target.get('items', 'a')).toEqual({ _id: 'a', v: 1, n: 2 })
  })

  it('applies merge metadata it knows, and a collision, recording it', async () => {
    const withCollision = mutate((c) => {
      c.meta.x = [[later(c.meta.t[0]), c.meta.t[0], { v: 1 }, { v: 2 }]]
      c.meta.p = { v: -1 }
    })
    expect(await target.applyRemote([withCollision])).toMatchObject({ applied: 1, unchanged: 0 })
    expect(await target.conflicts()).toMatchObject([{ id: 'a', winner: { site: 'other' }, loser: { site: 'src' } }])
  })

  it('rejects malformed apply options', async () => {
    await expect(target.applyRemote([good], { cursor: -1 })).rejects.toMatchObject({ code: 'INVALID_OPTIONS' })
    await expect(target.applyRemote('nope' as never)).rejects.toMatchObject({ code: 'INVALID_CHANGE' })
  })
})
