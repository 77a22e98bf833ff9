/**
 * Test helpers for meshmirror backends (`meshmirror/testing`). Requires vitest.
 *
 * @packageDocumentation
 */
export { type ConformanceOptions, type ConformanceSubject, runMeshStoreConformance } from './mesh/conformance.js'
