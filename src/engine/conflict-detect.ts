import type { JsonObject, JsonValue } from '../mesh/document.js'
import { jsonEqual } from '../mesh/json.js'
import type { Collision } from './collisions.js'
import { type DocState, isLive, materialise, UNSET } from './doc-state.js'
import { clockSite } from './hlc.js'

/**
 * Finding what a merge made lose, from the causal facts states carry. The
 * merge itself is untouched: these only look at its inputs and result.
 */

/** A concurrent update whose value lost: one field, written on two sites where neither write saw the other. */
export interface UpdateConflict {
  field: string
  winner: { clock: string; content: JsonObject }
  loser: { clock: string; content: JsonObject }
}

/**
 * True when the creation `s` holds was made by a writer that had seen the
 * creation `other` holds. A site's writes to a document carry increasing
 * sequence numbers: the writer of `other`'s creation had written nothing to
 * it after `other.createdAfter[site]` before creating it, so any later
 * sequence of that site seen by `s`'s creator is that creation or after it.
 */
function sawCreation(s: DocState, other: DocState): boolean {
  const site = clockSite(other.created)
  return (s.createdAfter?.[site] ?? 0) > (other.createdAfter?.[site] ?? 0)
}

function contentOf(id: string, s: DocState): JsonObject {
  const { _id: _, ...fields } = materialise(id, s) as JsonObject
  return fields
}

/**
 * The create/create collision between the document held here (`prev`) and
 * the one received (`incoming`): both live, created by different writes
 * neither of which had seen the other, with different contents. Undefined
 * otherwise: an update of a seen document shares its creation, and a
 * re-creation after a seen removal had seen the creation it follows.
 */
export function createCollision(id: string, prev: DocState, incoming: DocState): Collision | undefined {
  if (prev.created === incoming.created || !isLive(prev) || !isLive(incoming)) return undefined
  if (sawCreation(prev, incoming) || sawCreation(incoming, prev)) return undefined
  const here = contentOf(id, prev)
  const there = contentOf(id, incoming)
  if (jsonEqual(here, there)) return undefined
  return prev.created > incoming.created
    ? { winner: prev.created, loser: incoming.created, winnerContent: here, loserContent: there }
    : { winner: incoming.created, loser: prev.created, winnerContent: there, loserContent: here }
}

/**
 * The fields whose value lost to a concurrent write in the merge of `prev`
 * and `incoming` into `merged`. A write cannot have seen a competing one when
 * the value it replaced on its writer is older than that one (or there was
 * none). Fields whose winning write did not record what it replaced (a first
 * creation, a write of an older version or of a device that does not record
 * conflicts) are left out, as are counter fields (increments add up, none
 * is lost) and values a removal dropped.
 */
export function updateConflicts(prev: DocState, incoming: DocState, merged: DocState): UpdateConflict[] {
  if (!isLive(merged)) return []
  const out: UpdateConflict[] = []
  for (const [field, here] of prev.registers) {
    const there = incoming.registers.get(field)
    if (!there || there.clock === here.clock || merged.counters.has(field)) continue
    const [winner, loser, loserState] = here.clock > there.clock ? [here, there, incoming] : [there, here, prev]
    if (winner.pred === undefined || (winner.pred !== null && winner.pred >= loser.clock)) continue
    if (!isLive(loserState) || (merged.removed !== undefined && loser.clock <= merged.removed)) continue
    const w = winner.value === UNSET ? undefined : winner.value
    const l = loser.value === UNSET ? undefined : loser.value
    if (w === l || (w !== undefined && l !== undefined && jsonEqual(w, l))) continue
    out.push({
      field,
      winner: { clock: winner.clock, content: fieldContent(field, w) },
      loser: { clock: loser.clock, content: fieldContent(field, l) },
    })
  }
  return out
}

function fieldContent(field: string, value: JsonValue | undefined): JsonObject {
  return value === undefined ? {} : { [field]: value }
}
