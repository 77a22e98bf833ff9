import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { encodeChanges } from '../replication/protocol.js'
import { encodedChanges, recentEncodedChanges } from './encoded-changes.js'
import { openBuiltinStore } from './open-builtin-store.js'
import { RECENT_ROWS } from './recent-changes.js'
import type { BuiltinMesh, VersionVector } from './types.js'

describe('changes sent from their commit', () => {
  let dirs: string[] = []
  let a: BuiltinMesh
  let b: BuiltinMesh

  beforeEach(async () => {
    dirs = [mkdtempSync(join(tmpdir(), 'mm-recent-')), mkdtempSync(join(tmpdir(), 'mm-recent-'))]
    a = await openBuiltinStore({ dir: dirs[0]!, siteId: 'siteA', maxDocumentBytes: 200 })
    b = await openBuiltinStore({ dir: dirs[1]!, siteId: 'siteB' })
  })
  afterEach(async () => {
    await a.close()
    await b.close()
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })

  const seqOf = async (m: BuiltinMesh) => (await m.stats()).sequence

  /**
   * For every cursor, some peer vectors and limits: where the last commits
   * answer, the chunk and the frame are exactly what reading the table gives.
   * Returns the cursors they answered for.
   */
  async function sameAsTable(peers: VersionVector[]): Promise<number[]> {
    const upTo = await seqOf(a)
    const answered: number[] = []
    for (let after = 0; after <= upTo; after++) {
      for (const vv of peers) {
        for (const limit of [1, 2, 1000]) {
          const recent = recentEncodedChanges(a, vv, after, limit)
          if (recent === undefined) continue
          const table = await encodedChanges(a, vv, after, limit)
          expect(recent).toEqual(table)
          const v = table.complete ? table.versionVector : undefined
          expect(encodeChanges(7, recent.changes, recent.cursor, recent.complete, v)).toBe(
            encodeChanges(7, table.changes, table.cursor, table.complete, v),
          )
          if (!answered.includes(after)) answered.push(after)
        }
      }
    }
    return answered
  }

  it('answers for the last commits exactly as the table does: creations, updates, counters, removals', async () => {
    const peers = async () => [{}, { siteA: 2 }, { siteA: 5, siteB: 1 }, await a.versionVector()]
    const steps: (() => Promise<unknown>)[] = [
      () => a.upsert('pings', [{ _id: 'p1', sentAt: 1.5 }]),
      () =>
        a.upsert('items', [
          { _id: 'plain', n: 1 },
          { _id: 'quote"back\\slash\u2028', s: 'é "x" \n\t\u0001 😀', nested: { list: [1, null, true, -0.5e-7] } },
          { _id: 'gone', x: 1 },
        ]),
      // An update: the first row of `plain` is gone from the table.
      () => a.upsert('items', [{ _id: 'plain', n: 2, added: 'yes' }]),
      // The same document twice in one batch: only the second row stays.
      () =>
        a.upsert('items', [
          { _id: 'twice', v: 1 },
          { _id: 'twice', w: 2 },
        ]),
      () => a.increment('counts', 'c', 'n', 3),
      () => a.increment('counts', 'c', 'n', -1),
      () => a.remove('items', ['gone']),
      () => a.upsert('items', [{ _id: 'plain', n: 3 }], { mode: 'replace' }),
      // A transaction whose middle operation fails after writing a row: that row is rolled back.
      () =>
        a.transaction(async (tx) => {
          await tx.upsert('items', [{ _id: 'in-tx', v: 1 }])
          const tooLarge = tx.upsert('items', [
            { _id: 'rolled-back', v: 1 },
            { _id: 'big', s: 'x'.repeat(300) },
          ])
          await expect(tooLarge).rejects.toThrow(/over the limit/)
          await tx.increment('counts', 'c', 'n', 10)
          await tx.remove('pings', ['p1'])
        }),
      // Nothing changed: no row.
      () => a.upsert('items', [{ _id: 'plain', n: 3 }], { mode: 'replace' }),
    ]
    for (const step of steps) {
      const before = await seqOf(a)
      await step()
      const answered = await sameAsTable(await peers())
      // A live link's cursor (the last commit's start) is answered without a read.
      expect(answered).toContain(before)
    }
    // Every local commit since the store opened is kept: every cursor is answered.
    expect((await sameAsTable(await peers())).length).toBe((await seqOf(a)) + 1)
  })

  it('reads the table for what it did not follow: received changes, a large batch, an old cursor', async () => {
    await a.upsert('items', [{ _id: 'x', v: 1 }])
    await b.upsert('other', [{ _id: 'fromB', v: 'b' }])
    const beforeRemote = await seqOf(a)
    await a.applyRemote((await b.changesFor({}, 0, 100)).changes)
    expect(recentEncodedChanges(a, {}, beforeRemote, 100)).toBeUndefined()
    expect(recentEncodedChanges(a, {}, 0, 100)).toBeUndefined()

    // Local commits after it are answered again, from where they start.
    const afterRemote = await seqOf(a)
    await a.upsert('items', [{ _id: 'y', v: 2 }])
    // A document that came from the other site, changed here: its row holds both sites' versions.
    await a.upsert('other', [{ _id: 'fromB', v: 'a' }])
    const peers = [{}, await b.versionVector(), { siteA: afterRemote + 1 }, { siteA: afterRemote + 2, siteB: 0 }]
    expect(await sameAsTable(peers)).toEqual([afterRemote, afterRemote + 1, afterRemote + 2])

    // A batch of more rows than are kept.
    const beforeBatch = await seqOf(a)
    await a.upsert(
      'many',
      Array.from({ length: RECENT_ROWS + 1 }, (_, i) => ({ _id: `m${i}`, i })),
    )
    expect(recentEncodedChanges(a, {}, beforeBatch, 1000)).toBeUndefined()

    // Many small commits: the oldest are dropped, their cursors read from the table.
    const first = await seqOf(a)
    for (let i = 0; i < RECENT_ROWS + 10; i++) await a.upsert('pings', [{ _id: `p${i}`, i }])
    expect(recentEncodedChanges(a, {}, first, 1000)).toBeUndefined()
    const last = await seqOf(a)
    const answered = await sameAsTable([{}])
    expect(answered).toContain(last - 1)
    expect(answered.length).toBeLessThanOrEqual(RECENT_ROWS + 1)
  })
  it('answers for received changes and large batches from their versions, when the peer holds all of them', async () => {
    await a.upsert('items', [{ _id: 'x', v: 1 }])
    await b.upsert('other', [
      { _id: 'fromB', v: 'b' },
      { _id: 'x', v: 'b' },
    ])
    await b.upsert('other', [{ _id: 'fromB', v: 'b2' }])
    const beforeRemote = await seqOf(a)
    // Two commits of received changes, as a catch-up makes them: a plain creation, a merge, an update.
    const received = (await b.changesFor({}, 0, 100)).changes
    await a.applyRemote(received.slice(0, 1))
    await a.applyRemote(received.slice(1))
    const bVv = await b.versionVector()
    const aVv = await a.versionVector()
    const both = { ...bVv, ...aVv }
    const peers = [{}, bVv, aVv, both, { siteA: 1, siteB: 1 }]
    // The sender holds what it sent but not `x` of ours (kept before, summarised since): read from the table.
    expect(recentEncodedChanges(a, bVv, beforeRemote, 100)).toBeUndefined()
    // A peer holding all of it gets nothing, complete, without a read.
    const nothing = recentEncodedChanges(a, both, beforeRemote, 100)
    expect(nothing).toEqual({ changes: [], cursor: await seqOf(a), complete: true, versionVector: aVv })
    expect(await sameAsTable(peers)).toEqual([0, 1, 2, 3])

    // Local commits after them are sent as committed, the summarised ones left out.
    await a.upsert('items', [{ _id: 'y', v: 2 }])
    await a.upsert('other', [{ _id: 'fromB', v: 'a' }])
    const later = [...peers, { ...both, siteA: (await seqOf(a)) - 1 }]
    expect(await sameAsTable(later)).toEqual([0, 1, 2, 3, 4, 5])

    // A batch of more rows than are kept, then many small commits: the oldest go into the summary.
    await a.upsert(
      'many',
      Array.from({ length: RECENT_ROWS + 1 }, (_, i) => ({ _id: `m${i}`, i })),
    )
    for (let i = 0; i < RECENT_ROWS + 10; i++) await a.upsert('pings', [{ _id: `p${i}`, i }])
    const upTo = await seqOf(a)
    for (const after of [0, beforeRemote, upTo - RECENT_ROWS - 5, upTo - 1, upTo]) {
      for (const vv of [{}, bVv, { ...bVv, siteA: upTo - 3 }, { ...bVv, ...(await a.versionVector()) }]) {
        for (const limit of [1, 1000]) {
          const recent = recentEncodedChanges(a, vv, after, limit)
          if (recent !== undefined) expect(recent).toEqual(await encodedChanges(a, vv, after, limit))
        }
      }
    }
    expect(recentEncodedChanges(a, { ...bVv, ...(await a.versionVector()) }, 0, 1000)).toEqual({
      changes: [],
      cursor: upTo,
      complete: true,
      versionVector: await a.versionVector(),
    })
    expect(recentEncodedChanges(a, { ...bVv, siteA: upTo - 3 }, upTo - 5, 1000)?.changes).toHaveLength(3)
    // From the start: the summary holds nothing newer than that peer's versions.
    expect(recentEncodedChanges(a, { ...bVv, siteA: upTo - 3 }, 0, 1000)?.changes).toHaveLength(3)
    expect(recentEncodedChanges(a, { ...bVv, siteA: upTo - RECENT_ROWS - 5 }, 0, 1000)).toBeUndefined()
  })
})
