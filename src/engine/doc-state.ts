import { ErrorCode, MeshmirrorError } from '../errors.js'
import type { Document, JsonObject, JsonValue } from '../mesh/document.js'
import { canonicalJson, jsonEqual } from '../mesh/json.js'
import {
  type Collision,
  decodeCollisions,
  encodeCollisions,
  mergeCollisions,
  pruneCollisions,
  sameCollisions,
} from './collisions.js'
import { maxClock } from './hlc.js'
import type { CounterEntries, DocMeta, VersionVector } from './types.js'

/**
 * A document's replicated state, the unit of merging.
 *
 * - `written`: the latest write of any kind.
 * - `created`: the latest write that created the document, the first one or
 *   one made after the writer saw it removed. The document exists while this
 *   is newer than `removed`: a removal wins over updates made concurrently
 *   with it (no fragment of a removed document comes back), and a creation
 *   after it brings the document back.
 * - `registers`: per field, last writer wins by clock. `UNSET` records that a
 *   field was removed (replace mode) so an older concurrent set cannot revive it.
 * - `counters`: per field, per site, the total of that site's increments on
 *   top of the value set at `epoch`; entries of an older epoch are dead.
 * - `versions`: per origin site, the sequence of its latest write here.
 * - `createdAfter`: what the creating write had seen of the document (its
 *   `versions` then), for a creation after a removal; absent for a first
 *   creation, which had seen nothing. It tells concurrent creations (a
 *   create/create collision) from a re-creation after a seen removal.
 * - `collisions`: concurrent creations that lost to a later one, with both
 *   contents, so every replica the document reaches learns of them.
 *
 * A removal drops every register and counter entry at or before its clock:
 * a later write re-creates the document with only what it writes.
 */
export interface DocState {
  written: string
  created: string
  removed?: string
  registers: Map<string, Register>
  counters: Map<string, CounterEntries>
  versions: Record<string, number>
  createdAfter?: VersionVector
  collisions?: Collision[]
}

export const UNSET: unique symbol = Symbol('unset')
export interface Register {
  clock: string
  value: JsonValue | typeof UNSET
  /**
   * The clock of the value this write replaced on its writer (null: it
   * replaced none), kept for collections that record conflicts: a write
   * whose predecessor is older than a competing write cannot have seen it.
   * Undefined when not known (not recorded, or written by an older version).
   */
  pred?: string | null
}

/** True when the document is visible (not removed). */
export function isLive(s: DocState): boolean {
  return s.removed === undefined || s.created > s.removed
}

/** The clock a counter field's increments must carry to count: its last reset. */
function counterEpoch(s: DocState, field: string): string {
  return maxClock(s.registers.get(field)?.clock, s.removed) ?? ''
}

/** The visible value of a field, or undefined when it has none. */
export function fieldValue(s: DocState, field: string): JsonValue | undefined {
  const reg = s.registers.get(field)
  const regVisible = reg !== undefined && (s.removed === undefined || reg.clock > s.removed)
  const entries = s.counters.get(field)
  if (!entries) return regVisible && reg.value !== UNSET ? reg.value : undefined
  if (regVisible && reg.value !== UNSET && typeof reg.value !== 'number') return reg.value
  const epoch = counterEpoch(s, field)
  let sum = regVisible && typeof reg.value === 'number' ? reg.value : 0
  let any = regVisible && reg.value !== UNSET
  // Sum in site order so every replica computes the same floating-point result.
  for (const site of Object.keys(entries).sort()) {
    const e = entries[site]!
    if (e[0] === epoch) {
      sum += e[1]
      any = true
    }
  }
  return any ? sum : undefined
}

/** The visible document, or null when removed. */
export function materialise(id: string, s: DocState): Document | null {
  if (!isLive(s)) return null
  const doc: Document = { _id: id }
  if (s.counters.size === 0) {
    for (const [field, reg] of s.registers) {
      if (reg.value !== UNSET && (s.removed === undefined || reg.clock > s.removed)) doc[field] = reg.value
    }
    return doc
  }
  for (const field of s.registers.keys()) {
    const v = fieldValue(s, field)
    if (v !== undefined) doc[field] = v
  }
  for (const field of s.counters.keys()) {
    if (s.registers.has(field)) continue
    const v = fieldValue(s, field)
    if (v !== undefined) doc[field] = v
  }
  return doc
}

/** Drops what a removal or a reset made unreachable. Mutates and returns `s`. */
function prune(s: DocState): DocState {
  if (s.removed !== undefined) {
    for (const [f, reg] of s.registers) if (reg.clock <= s.removed) s.registers.delete(f)
    if (s.collisions) {
      const kept = pruneCollisions(s.collisions, s.removed)
      if (kept.length > 0) s.collisions = kept
      else delete s.collisions
    }
  }
  for (const [field, entries] of s.counters) {
    const epoch = counterEpoch(s, field)
    let kept = 0
    for (const site of Object.keys(entries)) {
      if (entries[site]![0] < epoch) delete entries[site]
      else kept++
    }
    if (kept === 0) s.counters.delete(field)
  }
  return s
}

function laterEntry(a: CounterEntries[string], b: CounterEntries[string]): CounterEntries[string] {
  if (a[0] !== b[0]) return a[0] > b[0] ? a : b
  if (a[2] !== b[2]) return a[2] > b[2] ? a : b
  return a[1] >= b[1] ? a : b
}

function laterRegister(a: Register, b: Register): Register {
  if (a.clock !== b.clock) return a.clock > b.clock ? a : b
  // Same clock means the same write; a deterministic choice keeps a hostile
  // or corrupted copy from splitting replicas. The same plain value (the
  // usual case) needs no encoding to compare.
  if (a.value === b.value) return predKey(a) >= predKey(b) ? a : b
  const ka = a.value === UNSET ? '' : JSON.stringify(a.value)
  const kb = b.value === UNSET ? '' : JSON.stringify(b.value)
  if (ka !== kb) return ka > kb ? a : b
  // A copy that passed through an older version lost its predecessor: keep the one that has it.
  return predKey(a) >= predKey(b) ? a : b
}

function predKey(r: Register): string {
  return r.pred === undefined ? '' : r.pred === null ? '-' : r.pred
}

/** The creation context of whichever state holds the later creation (the same creation: either). */
function laterCreation(a: DocState, b: DocState): VersionVector | undefined {
  if (a.created !== b.created) return a.created > b.created ? a.createdAfter : b.createdAfter
  if (a.createdAfter === undefined || b.createdAfter === undefined) return a.createdAfter ?? b.createdAfter
  return canonicalJson(a.createdAfter) >= canonicalJson(b.createdAfter) ? a.createdAfter : b.createdAfter
}

/** The join of two states: commutative, associative, idempotent. Does not mutate its inputs. */
export function mergeStates(a: DocState, b: DocState): DocState {
  const out: DocState = {
    written: maxClock(a.written, b.written) as string,
    created: maxClock(a.created, b.created) as string,
    registers: new Map(a.registers),
    counters: new Map(),
    versions: { ...a.versions },
  }
  const removed = maxClock(a.removed, b.removed)
  if (removed !== undefined) out.removed = removed
  const createdAfter = laterCreation(a, b)
  if (createdAfter !== undefined) out.createdAfter = createdAfter
  const collisions = mergeCollisions(a.collisions, b.collisions)
  if (collisions.length > 0) out.collisions = collisions
  for (const [f, reg] of b.registers) {
    const mine = out.registers.get(f)
    out.registers.set(f, mine ? laterRegister(mine, reg) : reg)
  }
  for (const source of [a.counters, b.counters]) {
    for (const [field, entries] of source) {
      const target = out.counters.get(field) ?? {}
      for (const site of Object.keys(entries)) {
        const e = entries[site]!
        const mine = target[site]
        target[site] = mine ? laterEntry(mine, e) : [e[0], e[1], e[2]]
      }
      out.counters.set(field, target)
    }
  }
  for (const [site, seq] of Object.entries(b.versions)) {
    if ((out.versions[site] ?? -1) < seq) out.versions[site] = seq
  }
  return prune(out)
}

/** True when two states are the same (ignoring field order). */
export function statesEqual(a: DocState, b: DocState): boolean {
  if (a.written !== b.written || a.created !== b.created || a.removed !== b.removed) return false
  if (a.registers.size !== b.registers.size || a.counters.size !== b.counters.size) return false
  if (!sameVector(a.createdAfter, b.createdAfter) || !sameCollisions(a.collisions, b.collisions)) return false
  for (const [f, ra] of a.registers) {
    const rb = b.registers.get(f)
    if (!rb || rb.clock !== ra.clock || rb.pred !== ra.pred) return false
    if (ra.value === UNSET || rb.value === UNSET ? ra.value !== rb.value : !jsonEqual(ra.value, rb.value)) return false
  }
  for (const [f, ea] of a.counters) {
    const eb = b.counters.get(f)
    if (!eb) return false
    const sites = Object.keys(ea)
    if (sites.length !== Object.keys(eb).length) return false
    for (const site of sites) {
      const x = ea[site]!
      const y = eb[site]
      if (!y || x[0] !== y[0] || x[1] !== y[1] || x[2] !== y[2]) return false
    }
  }
  return sameVector(a.versions, b.versions)
}

function sameVector(a: VersionVector | undefined, b: VersionVector | undefined): boolean {
  if (a === undefined || b === undefined) return a === b
  const sites = Object.keys(a)
  if (sites.length !== Object.keys(b).length) return false
  for (const site of sites) if (a[site] !== b[site]) return false
  return true
}

function cloneState(s: DocState): DocState {
  const counters = new Map<string, CounterEntries>()
  for (const [f, entries] of s.counters) {
    const copy: CounterEntries = {}
    for (const site of Object.keys(entries)) copy[site] = [...entries[site]!]
    counters.set(f, copy)
  }
  const out: DocState = {
    written: s.written,
    created: s.created,
    registers: new Map(s.registers),
    counters,
    versions: { ...s.versions },
  }
  if (s.removed !== undefined) out.removed = s.removed
  if (s.createdAfter !== undefined) out.createdAfter = s.createdAfter
  if (s.collisions !== undefined) out.collisions = [...s.collisions]
  return out
}

/** Who is writing: the local site, the write's clock, and its sequence number. */
export interface WriteStamp {
  site: string
  clock: string
  seq: number
}

/**
 * Applies a local upsert. Returns the new state, or undefined when nothing
 * would change (every given field already holds that value). With
 * `trackPred`, each written field remembers the clock of the value it
 * replaced (see {@link Register.pred}); a first creation replaces nothing
 * and records none.
 */
export function applyUpsert(
  prev: DocState | undefined,
  fields: JsonObject,
  replace: boolean,
  stamp: WriteStamp,
  rewriteEqual = false,
  trackPred = false,
): DocState | undefined {
  const live = prev !== undefined && isLive(prev)
  const next: DocState = prev
    ? cloneState(prev)
    : { written: stamp.clock, created: stamp.clock, registers: new Map(), counters: new Map(), versions: {} }
  const track = trackPred && prev !== undefined
  const set = (field: string, value: JsonValue | typeof UNSET) => {
    next.registers.set(
      field,
      track
        ? { clock: stamp.clock, value, pred: next.registers.get(field)?.clock ?? null }
        : { clock: stamp.clock, value },
    )
  }
  let changed = !live
  for (const field of Object.keys(fields)) {
    const value = fields[field]!
    if (live && !rewriteEqual && jsonEqual(fieldValue(prev, field) ?? UNSET_MARK, value)) continue
    // A field written at a later clock (a peer whose clock runs ahead of the
    // drift bound) keeps its value: local writes merge by the same rule as remote ones.
    if (!laterThanRegister(next, field, stamp.clock)) continue
    set(field, value)
    changed = true
  }
  if (replace && live) {
    for (const field of visibleFields(prev)) {
      if (field in fields || !laterThanRegister(next, field, stamp.clock)) continue
      set(field, UNSET)
      changed = true
    }
  }
  if (!changed) return undefined
  next.written = maxClock(next.written, stamp.clock) as string
  // Written over a removal this site has seen: a creation.
  if (!live) recreate(prev, next, stamp)
  next.versions[stamp.site] = stamp.seq
  return prev ? prune(next) : next
}

/** Marks `next` as created by `stamp` over `prev`, a removed state (or none). */
function recreate(prev: DocState | undefined, next: DocState, stamp: WriteStamp): void {
  next.created = maxClock(next.created, stamp.clock) as string
  if (prev === undefined) return
  // The versions seen before this write: every creation they include came before this one.
  if (Object.keys(prev.versions).length > 0) next.createdAfter = { ...prev.versions }
  else delete next.createdAfter
}

function laterThanRegister(s: DocState, field: string, clock: string): boolean {
  const reg = s.registers.get(field)
  return reg === undefined || clock > reg.clock
}

// A value no JSON document can hold, for comparing against "no value".
const UNSET_MARK = { __unset__: [] } as unknown as JsonValue

function visibleFields(s: DocState): string[] {
  const out: string[] = []
  for (const f of new Set([...s.registers.keys(), ...s.counters.keys()])) {
    if (fieldValue(s, f) !== undefined) out.push(f)
  }
  return out
}

/** Applies a local removal, or returns undefined when the document is not live. */
export function applyRemove(prev: DocState | undefined, stamp: WriteStamp): DocState | undefined {
  if (!prev || !isLive(prev)) return undefined
  const next = cloneState(prev)
  next.removed = maxClock(prev.removed, stamp.clock) as string
  next.versions[stamp.site] = stamp.seq
  return prune(next)
}

/** Applies a local increment; returns the new state and the field's new value. */
export function applyIncrement(
  prev: DocState | undefined,
  field: string,
  by: number,
  stamp: WriteStamp,
  where: { collection: string; id: string },
): { state: DocState; value: number } {
  const next: DocState = prev
    ? cloneState(prev)
    : { written: stamp.clock, created: stamp.clock, registers: new Map(), counters: new Map(), versions: {} }
  const current = prev ? fieldValue(prev, field) : undefined
  if (current !== undefined && typeof current !== 'number') {
    throw new MeshmirrorError(
      ErrorCode.TYPE_MISMATCH,
      `Cannot increment ${where.collection}/${where.id}.${field}: it holds a ${Array.isArray(current) ? 'array' : typeof current}, not a number. Set it to a number first.`,
      { details: { ...where, field } },
    )
  }
  const epoch = counterEpoch(next, field)
  const entries = next.counters.get(field) ?? {}
  const mine = entries[stamp.site]
  const total = mine && mine[0] === epoch ? mine[1] + by : by
  entries[stamp.site] = [epoch, total, stamp.clock]
  next.counters.set(field, entries)
  next.written = maxClock(next.written, stamp.clock) as string
  if (prev && !isLive(prev)) recreate(prev, next, stamp)
  next.versions[stamp.site] = stamp.seq
  prune(next)
  return { state: next, value: fieldValue(next, field) as number }
}

/** The index of `c` in `t`, appended when new. Documents carry few distinct clocks: a linear search beats a map. */
function clockIndex(t: string[], c: string): number {
  const i = t.indexOf(c)
  if (i >= 0) return i
  t.push(c)
  return t.length - 1
}

/** Encodes a state as the stored document and its metadata. */
export function encodeState(id: string, s: DocState): { doc: Document | null; meta: DocMeta } {
  const t: string[] = []
  const ix = (c: string): number => clockIndex(t, c)
  const meta: DocMeta = { t, i: ix(s.written), f: {}, v: s.versions }
  if (s.removed !== undefined) meta.d = ix(s.removed)
  if (s.created !== s.written) meta.c = ix(s.created)
  const live = isLive(s)
  for (const [f, reg] of s.registers) {
    const k = ix(reg.clock)
    if (!live) {
      // No content to imply fields by: every register is listed, with its value.
      meta.f[f] = k
      if (reg.value !== UNSET && !s.counters.has(f)) {
        meta.h ??= {}
        meta.h[f] = reg.value
      }
      continue
    }
    // Plain fields set at t[0] (usually all of them) are implied by the document.
    if (k !== 0 || reg.value === UNSET || s.counters.has(f)) meta.f[f] = k
  }
  if (s.counters.size > 0) {
    meta.n = {}
    for (const [f, entries] of s.counters) {
      const reg = s.registers.get(f)
      meta.n[f] = reg && reg.value !== UNSET ? { b: reg.value, s: entries } : { s: entries }
    }
  }
  for (const [f, reg] of s.registers) {
    if (reg.pred === undefined) continue
    meta.p ??= {}
    meta.p[f] = reg.pred === null ? -1 : ix(reg.pred)
  }
  if (s.createdAfter !== undefined) meta.cx = s.createdAfter
  if (s.collisions !== undefined) meta.x = encodeCollisions(s.collisions)
  return { doc: materialise(id, s), meta }
}

/**
 * Decodes a stored or received document and its metadata. Trusts its input's
 * shape: check received input with `assertRemoteChange` first.
 */
export function decodeState(doc: JsonObject | null, meta: DocMeta): DocState {
  const t = meta.t
  const s: DocState = {
    written: t[meta.i]!,
    created: t[meta.c ?? meta.i]!,
    registers: new Map(),
    counters: new Map(),
    versions: { ...meta.v },
  }
  if (meta.d !== undefined) s.removed = t[meta.d]!
  for (const f of Object.keys(meta.f)) {
    const clock = t[meta.f[f]!]!
    const counter = meta.n?.[f]
    let value: JsonValue | typeof UNSET
    if (counter) value = counter.b === undefined ? UNSET : counter.b
    else if (doc !== null) value = Object.hasOwn(doc, f) ? (doc[f] as JsonValue) : UNSET
    else value = meta.h !== undefined && Object.hasOwn(meta.h, f) ? (meta.h[f] as JsonValue) : UNSET
    s.registers.set(f, { clock, value })
  }
  if (doc !== null) {
    for (const f of Object.keys(doc)) {
      if (f === '_id' || Object.hasOwn(meta.f, f) || (meta.n !== undefined && Object.hasOwn(meta.n, f))) continue
      s.registers.set(f, { clock: t[0]!, value: doc[f] as JsonValue })
    }
  }
  if (meta.n) {
    for (const f of Object.keys(meta.n)) {
      const entries: CounterEntries = {}
      const src = meta.n[f]!.s
      for (const site of Object.keys(src)) entries[site] = [...src[site]!]
      s.counters.set(f, entries)
    }
  }
  if (meta.p) {
    for (const f of Object.keys(meta.p)) {
      const reg = s.registers.get(f)
      const k = meta.p[f]!
      if (reg) s.registers.set(f, { ...reg, pred: k < 0 ? null : t[k]! })
    }
  }
  if (meta.cx !== undefined) s.createdAfter = { ...meta.cx }
  if (meta.x !== undefined && meta.x.length > 0) s.collisions = decodeCollisions(meta.x)
  return s
}
