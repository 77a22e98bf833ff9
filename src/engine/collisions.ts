import type { JsonObject } from '../mesh/document.js'
import { canonicalJson } from '../mesh/json.js'
import type { DocMeta } from './types.js'

/**
 * A create/create collision a document went through: two creations under its
 * id where neither writer had seen the other's. The later creation won (its
 * fields win where both wrote); the contents are both versions as they were
 * when the two met, without `_id`.
 */
export interface Collision {
  winner: string
  loser: string
  winnerContent: JsonObject
  loserContent: JsonObject
}

/** At most this many collisions are kept per document: the latest, by clock. */
export const MAX_COLLISIONS = 16

/** The identity of a collision: the same pair of creations met anywhere is one collision. */
export function collisionKey(c: Collision): string {
  return `${c.winner}/${c.loser}`
}

/**
 * The union of two collision lists, sorted by key, one entry per key (when
 * two replicas recorded different contents for one pair, the same one is
 * kept everywhere), capped at the latest {@link MAX_COLLISIONS}.
 * Commutative, associative and idempotent, like the rest of the merge.
 */
export function mergeCollisions(a: readonly Collision[] | undefined, b: readonly Collision[] | undefined): Collision[] {
  if (!a?.length && !b?.length) return []
  const byKey = new Map<string, Collision>()
  for (const c of [...(a ?? []), ...(b ?? [])]) {
    const key = collisionKey(c)
    const mine = byKey.get(key)
    byKey.set(key, mine === undefined || contentKey(c) > contentKey(mine) ? c : mine)
  }
  const keys = [...byKey.keys()].sort()
  return keys.slice(Math.max(0, keys.length - MAX_COLLISIONS)).map((k) => byKey.get(k)!)
}

/** Adds one collision (a no-op when the list already holds its pair). */
export function addCollision(list: readonly Collision[] | undefined, c: Collision): Collision[] {
  return mergeCollisions(list, [c])
}

/** Drops the collisions a removal made history: those whose winner it came after. */
export function pruneCollisions(list: readonly Collision[], removed: string): Collision[] {
  return list.filter((c) => c.winner > removed)
}

/** True when `list` holds a collision with the pair of `c`. */
export function hasCollision(list: readonly Collision[] | undefined, c: Collision): boolean {
  const key = collisionKey(c)
  return list?.some((x) => collisionKey(x) === key) ?? false
}

export function sameCollisions(a: readonly Collision[] | undefined, b: readonly Collision[] | undefined): boolean {
  const la = a?.length ?? 0
  if (la !== (b?.length ?? 0)) return false
  for (let i = 0; i < la; i++) {
    const x = a![i]!
    const y = b![i]!
    if (collisionKey(x) !== collisionKey(y) || contentKey(x) !== contentKey(y)) return false
  }
  return true
}

export function encodeCollisions(list: readonly Collision[]): NonNullable<DocMeta['x']> {
  return list.map((c) => [c.winner, c.loser, c.winnerContent, c.loserContent])
}

/** Decodes stored or received collisions, in the merge's order. */
export function decodeCollisions(x: NonNullable<DocMeta['x']>): Collision[] {
  return mergeCollisions(
    x.map(([winner, loser, winnerContent, loserContent]) => ({ winner, loser, winnerContent, loserContent })),
    undefined,
  )
}

function contentKey(c: Collision): string {
  return `${canonicalJson(c.winnerContent)}\u0000${canonicalJson(c.loserContent)}`
}
