import type { TestContext } from 'vitest'
import type { MeshStore, ObserveOptions } from '../mesh-store.js'
import type { Query } from '../query.js'
import type { Inbox, Watch } from './probes.js'

/**
 * What each area of the conformance suite is given to register its tests:
 * the running test's store, and the means to open, reopen and watch it.
 */
export interface ConformanceSuite {
  /**
   * Registers one test of the contract. The body gets the running test's
   * fresh store; a title to skip (by the suite's options) is reported as
   * skipped, and a duplicate title fails the suite.
   */
  test(title: string, fn: (mesh: MeshStore, ctx: TestContext) => Promise<void>): void
  /** The running test's store; after {@link reopen}, the reopened one. */
  readonly mesh: MeshStore
  /** Closes the store under test and opens its persistence again; skips the test when unsupported. */
  reopen(ctx: TestContext): Promise<MeshStore>
  /** Whether the running test's subject can reopen its persistence. */
  canReopen(): boolean
  /** A second, unrelated fresh store, closed and cleaned up with the test. */
  openAnother(): Promise<MeshStore>
  /** An observer on the store under test whose deliveries are read one by one. */
  watch(query: Query, options?: ObserveOptions): Watch
  /** A queue for values pushed by callbacks, read with the suite's delivery deadline. */
  inbox<T>(what: string): Inbox<T>
}
