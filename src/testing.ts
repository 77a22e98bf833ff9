/**
 * Test kits for meshmirror ports (`meshmirror/testing`): the conformance
 * suites every mesh store and repository implementation passes, and the
 * acceptance suite of sync adapters. They define vitest suites, so they
 * require vitest and are called inside a test file.
 *
 * @packageDocumentation
 */

export { type AdapterAcceptanceOptions, runAdapterAcceptance } from './bridge/adapter-acceptance.js'
export {
  type ConformanceFactory,
  type ConformanceOptions,
  type ConformanceSubject,
  runMeshStoreConformance,
} from './mesh/conformance/index.js'
export {
  CONFORMANCE_MODELS,
  type RepositoryConformanceFactory,
  type RepositoryConformanceOptions,
  type RepositoryConformanceSubject,
  runRepositoryConformance,
} from './repository/repository-conformance.js'
