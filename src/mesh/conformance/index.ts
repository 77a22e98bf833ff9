import { afterEach, beforeEach, describe, expect, it, type TestContext } from 'vitest'
import type { MeshStore } from '../mesh-store.js'
import { badInputContract } from './bad-input.js'
import { changesSinceContract } from './changes-since.js'
import { countersContract } from './counters.js'
import { documentsContract } from './documents.js'
import { lifecycleContract } from './lifecycle.js'
import { observersContract } from './observers.js'
import { Inbox, Watch } from './probes.js'
import { queriesContract } from './queries.js'
import type { ConformanceSuite } from './suite.js'
import { transactionsContract } from './transactions.js'

/** A store under test, as the suite's factory returns it. */
export interface ConformanceSubject {
  /** A fresh, empty, open store. */
  store: MeshStore
  /**
   * Opens the same persistence again. The suite calls it only after it
   * closed every store this subject opened. Omit it when the backend cannot
   * reopen: the persistence tests are then reported as skipped.
   */
  reopen?: () => Promise<MeshStore>
  /** Removes what the subject created. Called once, after its stores are closed. */
  cleanup?: () => Promise<void>
}

/** Makes a fresh subject; called once per test (twice by the tests that need a second store). */
export type ConformanceFactory = () => Promise<ConformanceSubject>

export interface ConformanceOptions {
  /**
   * Tests to skip, by exact title, each with the reason (shown in the
   * report). A title that names no test fails the suite, so skips cannot
   * outlive the tests they were written for.
   */
  skip?: Record<string, string>
  /** How long to wait for one observer delivery, in ms. Default 5,000. */
  deliveryTimeoutMs?: number
}

/**
 * The acceptance suite every {@link MeshStore} implementation passes: each
 * promise of the interface's documentation, checked on real data. Call it
 * at the top level of a vitest test file; every test gets a fresh subject.
 *
 * @example
 * ```ts
 * import { runMeshStoreConformance } from 'meshmirror/testing'
 *
 * runMeshStoreConformance('my backend', async () => {
 *   const dir = await mkdtemp(join(tmpdir(), 'mesh-'))
 *   return {
 *     store: await openMyStore(dir),
 *     reopen: () => openMyStore(dir),
 *     cleanup: () => rm(dir, { recursive: true }),
 *   }
 * })
 * ```
 */
export function runMeshStoreConformance(
  name: string,
  factory: ConformanceFactory,
  options: ConformanceOptions = {},
): void {
  const timeoutMs = options.deliveryTimeoutMs ?? 5_000
  const skips = new Map(Object.entries(options.skip ?? {}))
  const titles = new Set<string>()

  describe(`MeshStore conformance: ${name}`, () => {
    let subjects: { subject: ConformanceSubject; stores: MeshStore[] }[] = []
    /** The store under test; replaced by `reopen()`. */
    let mesh: MeshStore

    const open = async () => {
      const subject = await factory()
      const entry = { subject, stores: [subject.store] }
      subjects.push(entry)
      return entry
    }

    beforeEach(async () => {
      mesh = (await open()).subject.store
    })

    afterEach(async () => {
      const done = subjects
      subjects = []
      const failures: unknown[] = []
      for (const { subject, stores } of done) {
        for (const s of stores) await s.close().catch((e: unknown) => failures.push(e))
        await subject.cleanup?.().catch((e: unknown) => failures.push(e))
      }
      if (failures.length > 0) throw new AggregateError(failures, 'closing or cleaning up the subject failed')
    })

    const suite: ConformanceSuite = {
      test: (title, fn) => {
        if (titles.has(title)) throw new Error(`conformance suite: duplicate test title ${JSON.stringify(title)}`)
        titles.add(title)
        const run = (ctx: TestContext) => fn(mesh, ctx)
        const reason = skips.get(title)
        if (reason === undefined) it(title, run)
        else it.skip(`${title} (skipped: ${reason})`, run)
      },
      get mesh() {
        return mesh
      },
      reopen: async (ctx) => {
        const entry = subjects[0]!
        if (!entry.subject.reopen) ctx.skip('the subject does not support reopen')
        for (const s of entry.stores) await s.close()
        mesh = await entry.subject.reopen!()
        entry.stores.push(mesh)
        return mesh
      },
      canReopen: () => subjects[0]!.subject.reopen !== undefined,
      openAnother: async () => (await open()).subject.store,
      watch: (query, opts) => new Watch(mesh, query, timeoutMs, opts),
      inbox: (what) => new Inbox(timeoutMs, what),
    }

    documentsContract(suite)
    countersContract(suite)
    transactionsContract(suite)
    queriesContract(suite)
    observersContract(suite)
    changesSinceContract(suite)
    badInputContract(suite)
    lifecycleContract(suite)
  })

  if (skips.size > 0) {
    it(`${name}: every skipped conformance test exists`, () => {
      expect([...skips.keys()].filter((title) => !titles.has(title))).toEqual([])
    })
  }
}
