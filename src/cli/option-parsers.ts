import { InvalidArgumentError } from 'commander'

/**
 * An option value parser for a whole number (`--limit 10`): digits only, so
 * that `''`, `0x10`, `1e3` or `10abc` are refused instead of read as some
 * other number. The command checks the range.
 */
export function integerOption(value: string): number {
  if (!/^-?\d{1,15}$/.test(value)) throw new InvalidArgumentError('expected a whole number.')
  return Number(value)
}

/** An option value parser for a number of seconds or the like (`--duration 2.5`). */
export function numberOption(value: string): number {
  if (!/^-?\d{1,15}(\.\d{1,15})?$/.test(value)) throw new InvalidArgumentError('expected a number.')
  return Number(value)
}
