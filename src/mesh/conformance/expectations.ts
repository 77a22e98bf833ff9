import { expect } from 'vitest'
import { type ErrorCode, MeshmirrorError } from '../../errors.js'
import type { Observer, ObserverChange } from '../mesh-store.js'

/** The ids of documents, in their order. */
export function ids(docs: readonly { _id: string }[]): string[] {
  return docs.map((d) => d._id)
}

/** An observer delivery reduced to the ids it inserted, updated and removed. */
export function summary(c: ObserverChange) {
  return { inserted: ids(c.inserted), updated: ids(c.updated), removed: ids(c.removed) }
}

/** Asserts that `promise` rejects with a {@link MeshmirrorError} of this code. */
export async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  const outcome = await promise.then(
    (value) => ({ value }),
    (error: unknown) => ({ error }),
  )
  if (!('error' in outcome)) throw new Error(`expected a ${code} error, got the result ${safeJson(outcome.value)}`)
  expect(outcome.error, `expected a ${code} error`).toBeInstanceOf(MeshmirrorError)
  expect((outcome.error as MeshmirrorError).code, String(outcome.error)).toBe(code)
}

/** Asserts that `fn` throws a {@link MeshmirrorError} of this code (an observer it returns is cancelled). */
export function expectThrowsCode(fn: () => unknown, code: ErrorCode): void {
  let thrown: unknown
  try {
    const result = fn()
    if (result && typeof result === 'object' && 'cancel' in result) (result as Observer).cancel()
  } catch (e) {
    thrown = e
  }
  expect(thrown, `expected a ${code} error`).toBeInstanceOf(MeshmirrorError)
  expect((thrown as MeshmirrorError).code, String(thrown)).toBe(code)
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value)
  } catch {
    return String(value)
  }
}
