import { afterEach, describe, expect, it, type TestContext } from 'vitest'
import { ErrorCode, MeshmirrorError } from '../errors.js'
import type { ModelDefinition } from './model-definition.js'
import { Outcome, type Repository, type Row } from './repository.js'

/** What a repository conformance factory returns. */
export interface RepositoryConformanceSubject {
  /** A fresh, empty repository holding the models the suite asked for. The suite closes it. */
  repository: Repository
  /** Removes what the repository left behind (files, tables), after it was closed. */
  cleanup?: () => void | Promise<void>
}

/**
 * Makes a fresh repository for one test. `models` are the models the suite
 * uses (a table `items` keyed by `id`, one column of each type): the
 * repository creates their storage.
 */
export type RepositoryConformanceFactory = (models: readonly ModelDefinition[]) => Promise<RepositoryConformanceSubject>

/** Options of {@link runRepositoryConformance}. */
export interface RepositoryConformanceOptions {
  /** Name of the implementation, in the suite's title. Default `repository`. */
  name?: string
}

const MODEL = 'items'

/** The suite's model: one column of each type, a text primary key. */
export const CONFORMANCE_MODELS: readonly ModelDefinition[] = Object.freeze([
  {
    name: MODEL,
    primaryKey: 'id',
    columns: { id: 'text', name: 'text', qty: 'integer', price: 'real', active: 'boolean', tags: 'json' },
  },
])

const item = (id: string, over: Partial<Row> = {}): Row => ({
  id,
  name: `item ${id}`,
  qty: 1,
  price: 2.5,
  active: true,
  tags: ['a', { nested: 1 }],
  ...over,
})

/**
 * The contract of the {@link Repository} port as the sync bridge relies on
 * it: rows by primary key, transactions that commit whole or not at all,
 * savepoints, sync state and checkpoints committed with the rows, unmirrored
 * rows, and — for repositories that capture changes themselves — the outbox
 * with loop prevention and acknowledgement. Tests of optional parts
 * (`capturesChanges`, `applyRemoteBatch`) are skipped for implementations
 * without them. Call it inside a vitest test file.
 *
 * @example
 * ```ts
 * import { runRepositoryConformance } from 'meshmirror/testing'
 * runRepositoryConformance(async (models) => {
 *   const dir = await mkdtemp(join(tmpdir(), 'repo-'))
 *   const repository = await openMyRepository({ dir, models })
 *   return { repository, cleanup: () => rm(dir, { recursive: true }) }
 * }, { name: 'my repository' })
 * ```
 */
export function runRepositoryConformance(
  factory: RepositoryConformanceFactory,
  options: RepositoryConformanceOptions = {},
): void {
  describe(`repository conformance: ${options.name ?? 'repository'}`, () => {
    const opened: RepositoryConformanceSubject[] = []
    afterEach(async () => {
      for (const s of opened.splice(0).reverse()) {
        await s.repository.close()
        await s.cleanup?.()
      }
    })
    const open = async (): Promise<Repository> => {
      const subject = await factory(CONFORMANCE_MODELS)
      opened.push(subject)
      return subject.repository
    }
    const capturing = async (ctx: TestContext): Promise<Repository> => {
      const repo = await open()
      if (!repo.capturesChanges) ctx.skip()
      await repo.setChangeCapture(MODEL, true)
      return repo
    }

    describe('rows', () => {
      it('lists its models and their primary keys', async () => {
        const repo = await open()
        expect(repo.models()).toContain(MODEL)
        expect(repo.keyColumns(MODEL)).toEqual(['id'])
        expect(repo.rowId(MODEL, item('a'))).toBe('a')
        expect(typeof repo.location).toBe('string')
      })

      it('stores rows by primary key and reads them back with their types', async () => {
        const repo = await open()
        expect(await repo.upsert(MODEL, [item('a'), item('b', { qty: 7, active: false, tags: null })])).toBe(2)
        expect(await repo.get(MODEL, 'a')).toEqual(item('a'))
        expect(await repo.get(MODEL, 'b')).toEqual(item('b', { qty: 7, active: false, tags: null }))
        expect(await repo.get(MODEL, 'missing')).toBeUndefined()
        expect(await repo.count(MODEL)).toBe(2)
      })

      it('updates a row in place on upsert of the same key', async () => {
        const repo = await open()
        await repo.upsert(MODEL, [item('a')])
        await repo.upsert(MODEL, [item('a', { qty: 3, name: 'renamed' })])
        expect(await repo.get(MODEL, 'a')).toEqual(item('a', { qty: 3, name: 'renamed' }))
        expect(await repo.count(MODEL)).toBe(1)
      })

      it('getMany returns the rows that exist, keyed by id', async () => {
        const repo = await open()
        await repo.upsert(MODEL, [item('a'), item('b'), item('c')])
        const many = await repo.getMany(MODEL, ['c', 'a', 'nope'])
        expect([...many.keys()].sort()).toEqual(['a', 'c'])
        expect(many.get('c')).toEqual(item('c'))
      })

      it('scans in primary-key order after an id, at most limit rows', async () => {
        const repo = await open()
        await repo.upsert(
          MODEL,
          ['d', 'b', 'e', 'a', 'c'].map((id) => item(id)),
        )
        const ids = (rows: Row[]) => rows.map((r) => r.id)
        expect(ids(await repo.scan(MODEL, { limit: 2 }))).toEqual(['a', 'b'])
        expect(ids(await repo.scan(MODEL, { after: 'b', limit: 2 }))).toEqual(['c', 'd'])
        expect(ids(await repo.scan(MODEL, { after: 'd', limit: 10 }))).toEqual(['e'])
        expect(await repo.scan(MODEL, { after: 'e', limit: 10 })).toEqual([])
      })

      it('deletes rows by id and returns how many existed', async () => {
        const repo = await open()
        await repo.upsert(MODEL, [item('a'), item('b')])
        expect(await repo.delete(MODEL, ['a', 'nope'])).toBe(1)
        expect(await repo.get(MODEL, 'a')).toBeUndefined()
        expect(await repo.count(MODEL)).toBe(1)
      })

      it('refuses an unknown model with INVALID_MODEL', async () => {
        const repo = await open()
        await expect(Promise.resolve().then(() => repo.get('nope', 'a'))).rejects.toMatchObject({
          code: ErrorCode.INVALID_MODEL,
        })
        await expect(Promise.resolve().then(() => repo.upsert('nope', [item('a')]))).rejects.toBeInstanceOf(
          MeshmirrorError,
        )
      })
    })

    describe('transactions', () => {
      it('commits every write of a transaction together, and counts it', async () => {
        const repo = await open()
        const before = repo.stats().transactions
        const out = await repo.transaction(async (tx) => {
          await tx.upsert(MODEL, [item('a'), item('b')])
          expect(await tx.get(MODEL, 'a')).toEqual(item('a'))
          await tx.delete(MODEL, ['b'])
          return 'done'
        })
        expect(out).toBe('done')
        expect(await repo.get(MODEL, 'a')).toEqual(item('a'))
        expect(await repo.get(MODEL, 'b')).toBeUndefined()
        expect(repo.stats().transactions).toBeGreaterThan(before)
      })

      it('rolls back every write when the callback throws, and rethrows its error', async () => {
        const repo = await open()
        await repo.upsert(MODEL, [item('a')])
        const failure = new Error('the app changed its mind')
        await expect(
          repo.transaction(async (tx) => {
            await tx.upsert(MODEL, [item('b'), item('a', { qty: 99 })])
            await tx.setCheckpoint('k', 'v')
            throw failure
          }),
        ).rejects.toBe(failure)
        expect(await repo.get(MODEL, 'b')).toBeUndefined()
        expect(await repo.get(MODEL, 'a')).toEqual(item('a'))
        expect(await repo.checkpoint('k')).toBeUndefined()
      })

      it('undoes a failed savepoint alone; the transaction goes on', async () => {
        const repo = await open()
        await repo.transaction(async (tx) => {
          await tx.upsert(MODEL, [item('a')])
          await expect(
            tx.savepoint(async () => {
              await tx.upsert(MODEL, [item('b')])
              throw new Error('refused')
            }),
          ).rejects.toThrow('refused')
          expect(await tx.savepoint(async () => tx.upsert(MODEL, [item('c')]))).toBe(1)
        })
        expect((await repo.scan(MODEL, { limit: 10 })).map((r) => r.id)).toEqual(['a', 'c'])
      })

      it('refuses a transaction object used after its transaction ended', async () => {
        const repo = await open()
        let leaked: Parameters<Parameters<Repository['transaction']>[0]>[0] | undefined
        await repo.transaction(async (tx) => {
          leaked = tx
        })
        await expect(Promise.resolve().then(() => leaked!.upsert(MODEL, [item('a')]))).rejects.toBeInstanceOf(
          MeshmirrorError,
        )
        expect(await repo.get(MODEL, 'a')).toBeUndefined()
      })
    })

    describe('sync state', () => {
      it('keeps each document’s hash, origin and document, with or without the document', async () => {
        const repo = await open()
        await repo.transaction(async (tx) => {
          await tx.putSyncStates(MODEL, [
            { id: 'a', hash: 'h1', origin: 'remote', doc: '{"_id":"a"}' },
            { id: 'b', hash: 'h2', origin: 'local', doc: null },
          ])
        })
        const states = await repo.syncStates(MODEL, ['a', 'b', 'nope'])
        expect(states.get('a')).toEqual({ hash: 'h1', origin: 'remote', doc: '{"_id":"a"}' })
        expect(states.get('b')).toEqual({ hash: 'h2', origin: 'local', doc: null })
        expect(states.has('nope')).toBe(false)
        expect((await repo.syncStates(MODEL, ['a'], { documents: false })).get('a')).toMatchObject({
          hash: 'h1',
          origin: 'remote',
          doc: null,
        })
        const all = await repo.allSyncStates(MODEL, 10)
        expect([...(all?.keys() ?? [])].sort()).toEqual(['a', 'b'])
        expect(await repo.allSyncStates(MODEL, 1)).toBeUndefined()
      })

      it('pages through sync states in id order, each once', async () => {
        const repo = await open()
        if (!repo.syncStatePage) return
        const ids = ['k03', 'k10', 'k01', 'k07', 'k02', 'k09', 'k05']
        await repo.transaction(async (tx) => {
          await tx.putSyncStates(
            MODEL,
            ids.map((id, i) => ({ id, hash: `h${id}`, origin: i % 2 ? 'local' : 'remote', doc: '{}' })),
          )
        })
        const seen: string[] = []
        let after: string | null = null
        for (;;) {
          const page = await repo.syncStatePage(MODEL, { after, limit: 3 })
          expect(page.length).toBeLessThanOrEqual(3)
          for (const s of page) expect(s).toEqual({ id: s.id, hash: `h${s.id}`, origin: expect.any(String), doc: null })
          seen.push(...page.map((s) => s.id))
          if (page.length < 3) break
          after = page.at(-1)!.id
        }
        expect(seen).toEqual([...ids].sort())
      })

      it('lists rows with no sync state as unmirrored, in key order', async () => {
        const repo = await open()
        await repo.upsert(
          MODEL,
          ['c', 'a', 'b'].map((id) => item(id)),
        )
        expect(await repo.countUnmirrored(MODEL)).toBe(3)
        await repo.transaction((tx) => tx.putSyncStates(MODEL, [{ id: 'b', hash: 'h', origin: 'local', doc: null }]))
        expect(await repo.countUnmirrored(MODEL)).toBe(2)
        expect((await repo.unmirrored(MODEL, { limit: 10 })).map((r) => r.id)).toEqual(['a', 'c'])
        expect((await repo.unmirrored(MODEL, { after: 'a', limit: 10 })).map((r) => r.id)).toEqual(['c'])
      })

      it('stores, replaces and clears named checkpoints', async () => {
        const repo = await open()
        expect(await repo.checkpoint('cursor')).toBeUndefined()
        await repo.transaction((tx) => tx.setCheckpoint('cursor', 'one'))
        await repo.transaction((tx) => tx.setCheckpoint('cursor', 'two'))
        expect(await repo.checkpoint('cursor')).toBe('two')
        await repo.transaction((tx) => tx.setCheckpoint('cursor', null))
        expect(await repo.checkpoint('cursor')).toBeUndefined()
      })

      it('clearSyncState forgets sync state and checkpoints and keeps rows', async () => {
        const repo = await open()
        await repo.upsert(MODEL, [item('a')])
        await repo.transaction(async (tx) => {
          await tx.putSyncStates(MODEL, [{ id: 'a', hash: 'h', origin: 'remote', doc: null }])
          await tx.setCheckpoint('cursor', 'c1')
        })
        await repo.transaction((tx) => tx.clearSyncState())
        expect((await repo.syncStates(MODEL, ['a'])).size).toBe(0)
        expect(await repo.checkpoint('cursor')).toBeUndefined()
        expect(await repo.get(MODEL, 'a')).toEqual(item('a'))
      })
    })

    describe('parked and refused documents', () => {
      it('keeps parked and refused documents with their reason, counts them, and forgets them on unpark', async () => {
        const repo = await open()
        await repo.transaction((tx) =>
          tx.park(MODEL, [
            { id: 'p1', state: 'parked', op: 'upsert', reason: 'its parent is not there yet', waitsFor: 'parents(id)' },
            { id: 'r1', state: 'refused', op: 'upsert', reason: 'a constraint', code: 'SQLITE_CONSTRAINT_NOTNULL' },
          ]),
        )
        expect(await repo.parkedCounts()).toEqual({ parked: 1, refused: 1 })
        const all = await repo.parked({ limit: 10 })
        expect(all.map((p) => [p.model, p.id, p.state, p.op]).sort()).toEqual([
          [MODEL, 'p1', 'parked', 'upsert'],
          [MODEL, 'r1', 'refused', 'upsert'],
        ])
        const refused = await repo.parked({ state: 'refused', limit: 10 })
        expect(refused).toHaveLength(1)
        expect(refused[0]).toMatchObject({ id: 'r1', reason: 'a constraint', code: 'SQLITE_CONSTRAINT_NOTNULL' })
        // Parking the same id again replaces its entry and counts the attempt.
        await repo.transaction((tx) =>
          tx.park(MODEL, [{ id: 'r1', state: 'refused', op: 'upsert', reason: 'still a constraint' }]),
        )
        const again = await repo.parked({ state: 'refused', limit: 10 })
        expect(again).toHaveLength(1)
        expect(again[0]?.reason).toBe('still a constraint')
        expect(again[0]?.attempts).toBeGreaterThan(refused[0]?.attempts ?? 0)
        await repo.transaction((tx) => tx.unpark(MODEL, ['p1', 'r1']))
        expect(await repo.parkedCounts()).toEqual({ parked: 0, refused: 0 })
        expect(await repo.parked({ limit: 10 })).toEqual([])
      })
    })

    describe('change capture', () => {
      it('captures local inserts, updates (with the row before) and deletes, oldest first', async (ctx) => {
        const repo = await capturing(ctx)
        await repo.upsert(MODEL, [item('a')])
        await repo.upsert(MODEL, [item('a', { qty: 5 })])
        await repo.delete(MODEL, ['a'])
        const changes = await repo.pendingChanges({ models: [MODEL], limit: 10 })
        expect(changes.map((c) => [c.model, c.id, c.op])).toEqual([
          [MODEL, 'a', 'upsert'],
          [MODEL, 'a', 'upsert'],
          [MODEL, 'a', 'delete'],
        ])
        const seqs = changes.map((c) => c.seq)
        expect([...seqs].sort((x, y) => x - y)).toEqual(seqs)
        expect(new Set(seqs).size).toBe(3)
        expect(changes[1]?.old).toMatchObject({ id: 'a', qty: 1 })
        const count = await repo.pendingChangeCount([MODEL])
        expect(count.count).toBe(3)
        expect(count.oldestAt).toBe(changes[0]?.at)
      })

      it('gives the rows as they were right after a captured change, read at one moment (rowsAt)', async (ctx) => {
        const repo = await capturing(ctx)
        if (!repo.rowsAt) return ctx.skip()
        await repo.upsert(MODEL, [item('a'), item('b'), item('c')])
        const at = (await repo.pendingChanges({ models: [MODEL], limit: 10 })).at(-1)!.seq
        await repo.upsert(MODEL, [item('a', { qty: 2 })])
        await repo.upsert(MODEL, [item('a', { qty: 3 })])
        await repo.delete(MODEL, ['b'])
        await repo.upsert(MODEL, [item('d')])
        const then = await repo.rowsAt(MODEL, ['a', 'b', 'c', 'd', 'z'], at)
        expect(Object.fromEntries(then)).toEqual({ a: item('a'), b: item('b'), c: item('c') })
        const latest = (await repo.pendingChanges({ models: [MODEL], limit: 10 })).at(-1)!.seq
        const now = await repo.rowsAt(MODEL, ['a', 'b', 'c', 'd', 'z'], latest)
        expect(Object.fromEntries(now)).toEqual({ a: item('a', { qty: 3 }), c: item('c'), d: item('d') })
      })

      it('does not capture writes of a remote transaction (loop prevention)', async (ctx) => {
        const repo = await capturing(ctx)
        await repo.transaction((tx) => tx.upsert(MODEL, [item('r')]), { origin: 'remote' })
        await repo.upsert(MODEL, [item('l')])
        expect((await repo.pendingChanges({ models: [MODEL], limit: 10 })).map((c) => c.id)).toEqual(['l'])
        expect(await repo.get(MODEL, 'r')).toEqual(item('r'))
      })

      it('reports pending ids, and acknowledges captured changes up to a position', async (ctx) => {
        const repo = await capturing(ctx)
        await repo.upsert(MODEL, [item('a'), item('b')])
        await repo.upsert(MODEL, [item('c')])
        const changes = await repo.pendingChanges({ models: [MODEL], limit: 10 })
        expect(changes).toHaveLength(3)
        const pending = await repo.transaction((tx) => tx.pendingIds(MODEL, ['a', 'c', 'z']))
        expect([...pending].sort()).toEqual(['a', 'c'])
        const upTo = changes[1]!.seq
        expect(await repo.transaction((tx) => tx.acknowledge(upTo, [MODEL]))).toBe(2)
        expect((await repo.pendingChanges({ models: [MODEL], limit: 10 })).map((c) => c.id)).toEqual(['c'])
        expect((await repo.pendingChangeCount([MODEL])).count).toBe(1)
      })

      it('calls onChanges listeners after a local write, until unsubscribed', async (ctx) => {
        const repo = await capturing(ctx)
        let calls = 0
        let wake: () => void = () => {}
        const off = repo.onChanges(() => {
          calls++
          wake()
        })
        const called = new Promise<void>((resolve) => {
          wake = resolve
        })
        await repo.upsert(MODEL, [item('a')])
        await called
        expect(calls).toBeGreaterThan(0)
        off()
      })

      it('stops capturing a model when capture is turned off', async (ctx) => {
        const repo = await capturing(ctx)
        await repo.setChangeCapture(MODEL, true) // idempotent
        await repo.upsert(MODEL, [item('a')])
        await repo.setChangeCapture(MODEL, false)
        await repo.upsert(MODEL, [item('b')])
        const ids = (await repo.pendingChanges({ models: [MODEL], limit: 10 })).map((c) => c.id)
        expect(ids).not.toContain('b')
      })
    })

    describe('remote batches', () => {
      it('writes rows, sync state and checkpoints in one go, holding back rows with unsent local changes', async (ctx) => {
        const repo = await open()
        if (!repo.applyRemoteBatch) return ctx.skip()
        const capture = repo.capturesChanges
        if (capture) await repo.setChangeCapture(MODEL, true)
        await repo.upsert(MODEL, [item('local', { qty: 1 }), item('gone')])
        const result = await repo.applyRemoteBatch({
          groups: [
            {
              model: MODEL,
              writes: [
                { id: 'new', row: item('new', { qty: 4 }), hash: 'h-new', doc: null },
                { id: 'local', row: item('local', { qty: 50 }), hash: 'h-local', doc: null },
                { id: 'gone', row: null, hash: '-', doc: null },
              ],
              hold: capture ? [] : ['local', 'gone'],
            },
          ],
          checkpoints: [{ key: 'cursor', value: 'c9' }],
        })
        expect(result.errors).toEqual([])
        const outcomes = result.groups[0]!.outcomes
        expect([Outcome.written, Outcome.changed]).toContain(outcomes[0])
        expect(outcomes[1]).toBe(Outcome.held)
        expect(await repo.get(MODEL, 'new')).toEqual(item('new', { qty: 4 }))
        expect(await repo.get(MODEL, 'local')).toEqual(item('local', { qty: 1 }))
        expect((await repo.syncStates(MODEL, ['new'])).get('new')).toMatchObject({ hash: 'h-new', origin: 'remote' })
        expect(await repo.checkpoint('cursor')).toBe('c9')
        if (capture) {
          // The batch's own writes are never captured.
          const ids = (await repo.pendingChanges({ models: [MODEL], limit: 10 })).map((c) => c.id)
          expect(ids).not.toContain('new')
        }
      })
    })

    describe('closing', () => {
      it('closes idempotently, then refuses use with STORE_CLOSED', async () => {
        const repo = await open()
        await repo.upsert(MODEL, [item('a')])
        await repo.close()
        await repo.close()
        await expect(repo.transaction(async () => undefined)).rejects.toMatchObject({ code: ErrorCode.STORE_CLOSED })
        await expect(Promise.resolve().then(() => repo.get(MODEL, 'a'))).rejects.toMatchObject({
          code: ErrorCode.STORE_CLOSED,
        })
      })
    })
  })
}
