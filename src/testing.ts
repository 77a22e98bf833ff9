/**
 * Test helpers for meshmirror backends (`meshmirror/testing`). Requires vitest.
 *
 * @packageDocumentation
 */
export {
  type ConformanceFactory,
  type ConformanceOptions,
  type ConformanceSubject,
  runMeshStoreConformance,
} from './mesh/conformance.js'
