import { ErrorCode, type MeshmirrorError, ValidationError } from '../errors.js'
import { assertCollection } from '../mesh/validate.js'
import type { Repository } from '../repository/repository.js'
import { Direction, type SyncAdapter } from './adapter.js'

const DIRECTIONS = new Set<string>(Object.values(Direction))

function invalid(adapter: unknown, message: string, cause?: unknown): ValidationError {
  const model = (adapter as { model?: unknown } | null)?.model
  return new ValidationError(ErrorCode.INVALID_ADAPTER, `Sync adapter ${String(model ?? '(unnamed)')}: ${message}`, {
    details: { model },
    ...(cause === undefined ? {} : { cause }),
  })
}

/**
 * Checks an adapter before registration: its shape, that the repository has
 * its model, and that no other adapter uses the same model or collection.
 * Throws `INVALID_ADAPTER`.
 */
export function checkAdapter(adapter: SyncAdapter, repository: Repository, others: readonly SyncAdapter[]): void {
  if (typeof adapter !== 'object' || adapter === null) throw invalid(adapter, 'an adapter must be an object.')
  if (typeof adapter.model !== 'string' || adapter.model.length === 0) {
    throw invalid(adapter, 'model must be a non-empty string.')
  }
  try {
    assertCollection(adapter.collection)
  } catch (error) {
    throw invalid(adapter, (error as MeshmirrorError).message, error)
  }
  for (const fn of ['toDocument', 'fromDocument', 'documentId'] as const) {
    if (typeof adapter[fn] !== 'function') throw invalid(adapter, `${fn} must be a function.`)
  }
  for (const fn of ['observerQuery', 'shouldApplyRemote', 'upsertToRepository', 'deleteFromRepository'] as const) {
    if (adapter[fn] !== undefined && typeof adapter[fn] !== 'function') {
      throw invalid(adapter, `${fn} must be a function when given.`)
    }
  }
  if (adapter.direction !== undefined && !DIRECTIONS.has(adapter.direction)) {
    throw invalid(adapter, `direction must be one of ${[...DIRECTIONS].join(', ')}.`)
  }
  const counters = adapter.counterFields
  if (counters !== undefined && !(Array.isArray(counters) && counters.every((f) => typeof f === 'string'))) {
    throw invalid(adapter, 'counterFields must be an array of document field names.')
  }
  for (const link of adapter.backup?.links ?? []) {
    if (typeof link?.field !== 'string' || typeof link.model !== 'string') {
      throw invalid(adapter, 'each backup link needs a field and a model.')
    }
  }
  if (!repository.models().includes(adapter.model)) {
    throw invalid(
      adapter,
      `the repository (${repository.location}) has no model ${adapter.model}; it has ${repository.models().join(', ') || 'none'}.`,
    )
  }
  for (const other of others) {
    if (other.model === adapter.model) throw invalid(adapter, 'another adapter is already registered for this model.')
    if (other.collection === adapter.collection) {
      throw invalid(adapter, `collection ${adapter.collection} is already mirrored by the adapter of ${other.model}.`)
    }
  }
}
