import type { BackupLink, Direction } from '../bridge/adapter.js'

/** A field's declared type, as the generator and `defineModel` understand it. */
export type FieldType =
  | { kind: 'string' | 'number' | 'integer' | 'boolean' | 'date' | 'json' }
  | { kind: 'enum'; values: readonly (string | number)[] }
  | { kind: 'array'; of: FieldType }

/** One field of a synced model. */
export interface FieldSpec {
  /** Property name on the model class (and default column and document field). */
  property: string
  /** Repository column. Default: the property name. */
  column: string
  /** Mesh document field. Default: the property name. */
  docField: string
  /** Other document field names accepted when reading (e.g. `branch_id` for `branchId`). */
  aliases: readonly string[]
  type: FieldType
  /** May be absent from a document. */
  optional: boolean
  /** May be null. */
  nullable: boolean
  /** The primary key; exactly one per model. Its value is the document `_id`. */
  id: boolean
  /** A counter field (stock levels and the like). */
  counter: boolean
}

/** A synced model: what `@SyncModel` and its field decorators declare, or `defineModel` is given. */
export interface ModelSpec {
  /** Class name (generated identifiers derive from it). */
  name: string
  /** Repository model (table). Default: the collection name. */
  model: string
  collection: string
  direction: Direction
  hydrateOnStartup: boolean
  backupPull: boolean
  links: readonly BackupLink[]
  /** Document field → context key: documents are received only when every field equals its context value. */
  scope: Readonly<Record<string, string>>
  fields: readonly FieldSpec[]
  /** How the key identifies a row across devices (the repository model's `keys`). Absent: `global`. */
  keys?: 'global' | 'local'
}
