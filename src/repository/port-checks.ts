import { ErrorCode, ValidationError } from '../errors.js'

/** Checks a `limit` argument of the repository port: a positive integer. Throws `INVALID_OPTIONS`. */
export function checkLimit(limit: number): number {
  if (!Number.isSafeInteger(limit) || limit <= 0) {
    throw new ValidationError(ErrorCode.INVALID_OPTIONS, `limit must be a positive integer, got ${String(limit)}.`)
  }
  return limit
}

/** The `INVALID_MODEL` error for a model name a repository at `location` does not hold. */
export function unknownModel(name: string, location: string, known: readonly string[]): ValidationError {
  return new ValidationError(
    ErrorCode.INVALID_MODEL,
    `Unknown model ${JSON.stringify(name)} in ${location}; known: ${known.join(', ') || '(none)'}.`,
    { details: { model: name } },
  )
}
