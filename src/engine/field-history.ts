import type { FieldHistory, FieldWrite } from '../mesh/field-history.js'
import { decodeState, fieldValue, isLive, UNSET } from './doc-state.js'
import { clockSite, clockWall } from './hlc.js'
import { parseDoc, type StoreCore } from './store-core.js'
import type { DocMeta } from './types.js'

/** A clock as people read it: the site that issued it and its wall time. */
function stamp(clock: string): { site: string; clock: string; writtenAt: string } {
  return { site: clockSite(clock), clock, writtenAt: new Date(clockWall(clock)).toISOString() }
}

/**
 * Which write each field's value comes from, read off the document's stored
 * merge state: the register clock of each field (last writer wins) and, for
 * counters, each site's increments.
 */
export function readFieldHistory(core: StoreCore, collection: string, id: string): FieldHistory | undefined {
  const row = core.r.getRow.get(collection, id)
  if (!row) return undefined
  const state = decodeState(parseDoc(row.doc), JSON.parse(row.meta) as DocMeta)
  const live = isLive(state)
  const fields: FieldWrite[] = []
  const names = new Set([...state.registers.keys(), ...state.counters.keys()])
  for (const field of [...names].sort()) {
    const reg = state.registers.get(field)
    const entries = state.counters.get(field)
    // A counter never set has no register: its history is its increments.
    const base = reg?.clock ?? state.created
    const value = live ? fieldValue(state, field) : reg && reg.value !== UNSET ? reg.value : undefined
    const write: FieldWrite = { field, ...stamp(base), ...(value === undefined ? {} : { value }) }
    if (entries) {
      write.increments = Object.keys(entries)
        .sort()
        .map((site) => {
          const [, total, clock] = entries[site]!
          return { site, total, clock, writtenAt: new Date(clockWall(clock)).toISOString() }
        })
    }
    fields.push(write)
  }
  return {
    collection,
    id,
    live,
    written: stamp(state.written),
    created: stamp(state.created),
    ...(state.removed === undefined ? {} : { removed: stamp(state.removed) }),
    fields,
    versions: { ...state.versions },
  }
}
