import {
  type BackupLink,
  type Direction,
  rejectDocument,
  type SyncAdapter,
  type SyncContext,
} from '../bridge/adapter.js'
import { ErrorCode, ValidationError } from '../errors.js'
import type { Document } from '../mesh/document.js'
import type { Filter } from '../mesh/query.js'
import type { ColumnType, ModelDefinition } from '../repository/model-definition.js'
import type { Row } from '../repository/repository.js'
import { pick, readField, toDocValue } from './convert.js'
import type { FieldSpec, FieldType, ModelSpec } from './model-spec.js'

/** A field type in `defineModel`: a name, `{ enum: [...] }` or `{ array: type }`. */
export type FieldTypeInput =
  | 'string'
  | 'number'
  | 'integer'
  | 'boolean'
  | 'date'
  | 'json'
  | { enum: readonly (string | number)[] }
  | { array: FieldTypeInput }

export interface FieldInput {
  type: FieldTypeInput
  /** The primary key. */
  id?: boolean
  /** Repository column. Default: the field's key. */
  column?: string
  /** Document field. Default: the field's key. */
  name?: string
  /** Other document field names accepted when reading. */
  alias?: string | readonly string[]
  optional?: boolean
  nullable?: boolean
  counter?: boolean
}

export interface ModelInput {
  collection: string
  /** Repository model (table). Default: `collection`. */
  model?: string
  direction?: Direction
  hydrateOnStartup?: boolean
  backupPull?: boolean
  links?: readonly BackupLink[]
  /** Document fields that must equal context values: `['branchId']` or `{ branchId: 'currentBranch' }`. */
  scope?: readonly string[] | Readonly<Record<string, string>>
  fields: Readonly<Record<string, FieldInput | FieldTypeInput>>
  /**
   * `local` when every device creates rows under integer keys SQLite
   * allocates (see the keys documentation): the id field, and fields that
   * reference such a model, then hold document ids (declare them as text).
   */
  keys?: 'global' | 'local'
}

/** Hooks generated adapters accept, for tests: fixed context values (e.g. `{ branchId: 7 }`). */
export interface SyncAdapterHooks {
  context?: SyncContext
}

/** A model's adapter, its repository definition, and the normalised spec. */
export interface DefinedModel {
  adapter: SyncAdapter
  definition: ModelDefinition
  spec: ModelSpec
}

/**
 * Builds a model's adapter at runtime, without code generation: the same
 * adapter `meshmirror generate` writes for an annotated class.
 *
 * @example
 * ```ts
 * const { adapter, definition } = defineModel({
 *   collection: 'counters',
 *   scope: ['branchId'],
 *   fields: {
 *     id: { type: 'string', id: true },
 *     branchId: { type: 'integer', column: 'branch_id', alias: 'branch_id' },
 *     curRcptNo: { type: 'integer', column: 'cur_rcpt_no' },
 *   },
 * })
 * ```
 */
export function defineModel(input: ModelInput, className = input.collection): DefinedModel {
  const spec = normaliseModel(input, className)
  return { spec, adapter: adapterFromSpec(spec), definition: definitionFromSpec(spec) }
}

export function normaliseModel(input: ModelInput, className: string): ModelSpec {
  const bad = (m: string) =>
    new ValidationError(ErrorCode.INVALID_MODEL, `Model ${className}: ${m}`, { details: { model: className } })
  if (typeof input !== 'object' || input === null) throw bad('the definition must be an object')
  if (typeof input.collection !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(input.collection)) {
    throw bad(`invalid collection name ${JSON.stringify(input.collection)}`)
  }
  const fields: FieldSpec[] = Object.entries(input.fields ?? {}).map(([key, f]) => {
    const fi: FieldInput = typeof f === 'string' || !('type' in f) ? { type: f as FieldTypeInput } : f
    return {
      property: key,
      column: fi.column ?? key,
      docField: fi.name ?? key,
      aliases: fi.alias === undefined ? [] : typeof fi.alias === 'string' ? [fi.alias] : [...fi.alias],
      type: fieldType(fi.type, key, bad),
      optional: fi.optional === true,
      nullable: fi.nullable === true,
      id: fi.id === true,
      counter: fi.counter === true,
    }
  })
  const ids = fields.filter((f) => f.id)
  if (ids.length !== 1)
    throw bad(ids.length === 0 ? 'no id field (mark one with id: true / @Id())' : 'more than one id field')
  const scope: Record<string, string> = Array.isArray(input.scope)
    ? Object.fromEntries((input.scope as string[]).map((s) => [s, s]))
    : { ...(input.scope as Record<string, string> | undefined) }
  for (const docField of Object.keys(scope)) {
    if (!fields.some((f) => f.docField === docField)) throw bad(`scope field ${docField} is not a field of the model`)
  }
  return {
    name: className,
    model: input.model ?? input.collection,
    collection: input.collection,
    direction: input.direction ?? 'bidirectional',
    hydrateOnStartup: input.hydrateOnStartup ?? true,
    backupPull: input.backupPull ?? true,
    links: input.links ?? [],
    scope,
    fields,
    ...(input.keys === undefined ? {} : { keys: checkKeys(input.keys, bad) }),
  }
}

function checkKeys(keys: unknown, bad: (m: string) => Error): 'global' | 'local' {
  if (keys !== 'global' && keys !== 'local') throw bad(`keys must be "global" or "local", not ${JSON.stringify(keys)}`)
  return keys
}

function fieldType(t: FieldTypeInput, key: string, bad: (m: string) => Error): FieldType {
  if (typeof t === 'string') {
    if (['string', 'number', 'integer', 'boolean', 'date', 'json'].includes(t)) return { kind: t } as FieldType
    throw bad(`field ${key} has unsupported type ${JSON.stringify(t)}`)
  }
  if (typeof t === 'object' && t !== null && 'enum' in t && Array.isArray(t.enum) && t.enum.length > 0) {
    return { kind: 'enum', values: [...t.enum] }
  }
  if (typeof t === 'object' && t !== null && 'array' in t) return { kind: 'array', of: fieldType(t.array, key, bad) }
  throw bad(`field ${key} has an unsupported type`)
}

/** The repository column type for a field type. */
export function columnType(t: FieldType): ColumnType {
  switch (t.kind) {
    case 'integer':
      return 'integer'
    case 'number':
      return 'real'
    case 'boolean':
      return 'boolean'
    case 'json':
    case 'array':
      return 'json'
    case 'enum':
      return t.values.every((v) => typeof v === 'number') ? 'integer' : 'text'
    default:
      return 'text'
  }
}

export function definitionFromSpec(spec: ModelSpec): ModelDefinition {
  const id = spec.fields.find((f) => f.id)!
  return {
    name: spec.model,
    primaryKey: id.column,
    ...(spec.keys === undefined ? {} : { keys: spec.keys }),
    columns: Object.fromEntries(spec.fields.map((f) => [f.column, columnType(f.type)])),
  }
}

/** A model's scope: document fields that must equal context values, and the aliases they may be read under. */
export interface ScopeSpec {
  scope: Readonly<Record<string, string>>
  fields: readonly Pick<FieldSpec, 'docField' | 'aliases'>[]
}

/** The observer filter for a scope and context; null while a scoped context value is unset. */
export function scopeFilter(spec: ScopeSpec, context: SyncContext): Filter | null {
  const parts: Filter[] = []
  for (const [docField, key] of Object.entries(spec.scope)) {
    const value = context[key]
    if (value === undefined || value === null) return null
    const names = [docField, ...(spec.fields.find((f) => f.docField === docField)?.aliases ?? [])]
    parts.push(names.length === 1 ? { [docField]: value } : { $or: names.map((n) => ({ [n]: value })) })
  }
  return parts.length === 0 ? {} : parts.length === 1 ? parts[0]! : { $and: parts }
}

/** Whether a document is in scope for a context (reading aliases too). */
export function inScope(spec: ScopeSpec, doc: Document, context: SyncContext): boolean {
  for (const [docField, key] of Object.entries(spec.scope)) {
    const names = [docField, ...(spec.fields.find((f) => f.docField === docField)?.aliases ?? [])]
    if (pick(doc, names) !== context[key]) return false
  }
  return true
}

/** The document `_id` for a record's key. */
export function idOf(value: unknown, model: string): string {
  if (typeof value === 'string' && value.length > 0) return value
  if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  throw new ValidationError(ErrorCode.INVALID_ID, `A ${model} record has no usable primary key (${String(value)}).`)
}

/** A record key from a document `_id`, typed like the id field. */
export function keyFromId(id: string, type: FieldType): string | number {
  if (type.kind !== 'integer' && type.kind !== 'number') return id
  const n = Number(id)
  if (!Number.isFinite(n) || (type.kind === 'integer' && !Number.isInteger(n))) {
    return rejectDocument(`_id ${JSON.stringify(id)} is not a number`, { field: '_id' })
  }
  return n
}

export function adapterFromSpec(spec: ModelSpec): SyncAdapter {
  const id = spec.fields.find((f) => f.id)!
  const rest = spec.fields.filter((f) => !f.id)
  const adapter: SyncAdapter = {
    model: spec.model,
    collection: spec.collection,
    direction: spec.direction,
    hydrateOnStartup: spec.hydrateOnStartup,
    backup: { enabled: spec.backupPull, links: spec.links },
    counterFields: spec.fields.filter((f) => f.counter).map((f) => f.docField),
    documentId: (row: Row) => idOf(row[id.column], spec.model),
    toDocument(row: Row): Document {
      const doc: Document = { _id: idOf(row[id.column], spec.model) }
      for (const f of rest) doc[f.docField] = toDocValue(row[f.column], f.type)
      return doc
    },
    fromDocument(doc: Document): Row {
      const row: Row = { [id.column]: keyFromId(doc._id, id.type) }
      for (const f of rest) row[f.column] = readField(doc, f)
      return row
    },
  }
  if (spec.direction !== 'sendOnly') {
    adapter.observerQuery = (context) => scopeFilter(spec, context)
    adapter.shouldApplyRemote = (doc, context) => inScope(spec, doc, context)
  }
  return adapter
}
