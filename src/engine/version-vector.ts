import type { VersionVector } from './types.js'

/**
 * Does `vv` hold every version `other` holds? Reads only `vv`'s own
 * entries, so a vector built from a peer's JSON answers the same whatever
 * its site ids.
 */
export function covers(vv: VersionVector, other: VersionVector): boolean {
  for (const site in other) {
    const held = Object.hasOwn(vv, site) ? vv[site] : undefined
    if (other[site]! > (typeof held === 'number' ? held : 0)) return false
  }
  return true
}

/** Merges `from` into `into`: the entry-wise maximum. */
export function maxInto(into: VersionVector, from: VersionVector): void {
  for (const site in from) {
    const seq = from[site]!
    if (!(seq <= (Object.hasOwn(into, site) ? into[site]! : 0))) into[site] = seq
  }
}
