import type Database from 'better-sqlite3'
import { ErrorCode, ValidationError } from '../errors.js'
import { type ForeignKey, readForeignKeys } from './foreign-keys.js'

/**
 * How a column's values convert between SQLite and the row objects adapters
 * see: `boolean` stores 0/1 and reads booleans, `json` stores objects and
 * arrays as JSON text and parses them back, `any` passes values through.
 */
export type ColumnType = 'text' | 'integer' | 'real' | 'boolean' | 'json' | 'any'

/**
 * A model the repository holds: one table with a declared primary key (one
 * column, or several: a composite key).
 *
 * For a table that already exists (an app's own schema), `name` and, when
 * the table is named differently, `table` are enough: columns and key are
 * read from the table. Declared `columns` refine conversions (booleans,
 * JSON) and are used to create the table when it does not exist.
 *
 * @example
 * ```ts
 * const counters: ModelDefinition = {
 *   name: 'counters',
 *   primaryKey: 'id',
 *   columns: { id: 'text', branch_id: 'integer', cur_rcpt_no: 'integer', active: 'boolean' },
 * }
 * ```
 */
export interface ModelDefinition {
  /** Model name used by adapters and the outbox: `[A-Za-z_][A-Za-z0-9_]*`, at most 64 characters. */
  name: string
  /** Table name. Default: `name`. */
  table?: string
  /**
   * Primary-key column, or columns in key order for a composite key. Default:
   * the table's primary key, or `id` for a new table.
   */
  primaryKey?: string | readonly string[]
  /** Columns and their types. Required to create a missing table. */
  columns?: Readonly<Record<string, ColumnType>>
  /**
   * How the key identifies a row across devices (see {@link KeyMode}).
   * Default `global`. `local` needs a single INTEGER primary key.
   */
  keys?: KeyMode
}

/** A model resolved against its table. */
export interface ModelInfo {
  name: string
  table: string
  /** The primary-key columns, in key order (one for a single-column key). */
  keys: string[]
  columns: Map<string, ColumnType>
  /** The table's foreign keys (to any table, mirrored or not). */
  foreignKeys: ForeignKey[]
  keyMode: KeyMode
  /**
   * Columns holding keys of a `local`-keyed model, and that model: the
   * model's own key when it is `local`, and foreign keys referencing one.
   * The mesh carries document ids in them; the table holds local keys.
   * Filled in once every model is resolved.
   */
  localRefs: Map<string, string>
}

/**
 * How a model's primary key identifies a row across devices.
 *
 * - `global`: a key names the same row on every device (UUIDs, natural keys,
 *   rows created by one device only). The document id is the key.
 * - `local`: every device allocates its own integer keys, as SQLite does for
 *   an `INTEGER PRIMARY KEY`. The document id names the device that created
 *   the row and its key there (`<device>:<key>`, see `meshKeyId` in key-map.ts); every
 *   other device stores the row under a key it allocates itself and keeps the
 *   mapping in `_meshmirror_keys`, in the transaction that writes the row.
 */
export type KeyMode = 'global' | 'local'

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/
const COLUMN_TYPES = new Set<ColumnType>(['text', 'integer', 'real', 'boolean', 'json', 'any'])
/**
 * Adds to each model the foreign-key columns that reference a `local`-keyed
 * model's key (single-column foreign keys to a mirrored `local` model).
 */
export function linkLocalRefs(models: Iterable<ModelInfo>): void {
  const all = [...models]
  for (const m of all) {
    for (const fk of m.foreignKeys) {
      if (fk.from.length !== 1) continue
      const parent = all.find((p) => p.table === fk.table && p.keyMode === 'local')
      if (parent && fk.to[0] === parent.keys[0] && !m.localRefs.has(fk.from[0]!)) {
        m.localRefs.set(fk.from[0]!, parent.name)
      }
    }
  }
}

const SQL_TYPE: Record<ColumnType, string> = {
  text: 'TEXT',
  integer: 'INTEGER',
  real: 'REAL',
  boolean: 'INTEGER',
  json: 'TEXT',
  any: '',
}

/** Quotes an SQL identifier. */
export function quoteIdent(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

function invalid(message: string, details: Record<string, unknown>): ValidationError {
  return new ValidationError(ErrorCode.INVALID_MODEL, message, { details })
}

/** Checks a definition's shape before touching the database. */
export function checkDefinition(def: ModelDefinition): void {
  if (typeof def !== 'object' || def === null) throw invalid('A model definition must be an object with a name.', {})
  if (typeof def.name !== 'string' || !NAME_RE.test(def.name) || def.name.length > 64) {
    throw invalid(
      `Invalid model name ${JSON.stringify(def.name)}: use 1-64 characters from [A-Za-z0-9_], not starting with a digit.`,
      { model: def.name },
    )
  }
  if (
    def.table !== undefined &&
    (typeof def.table !== 'string' || def.table.length === 0 || def.table.includes('\0'))
  ) {
    throw invalid(`Model ${def.name}: table must be a non-empty name.`, { model: def.name })
  }
  const pk = def.primaryKey
  if (
    pk !== undefined &&
    !(typeof pk === 'string' && pk.length > 0) &&
    !(Array.isArray(pk) && pk.length > 0 && pk.every((k) => typeof k === 'string' && k.length > 0))
  ) {
    throw invalid(`Model ${def.name}: primaryKey must be a column name or a non-empty array of column names.`, {
      model: def.name,
    })
  }
  if (def.keys !== undefined && def.keys !== 'global' && def.keys !== 'local') {
    throw invalid(`Model ${def.name}: keys must be "global" or "local", not ${JSON.stringify(def.keys)}.`, {
      model: def.name,
    })
  }
  for (const [column, type] of Object.entries(def.columns ?? {})) {
    if (!COLUMN_TYPES.has(type)) {
      throw invalid(
        `Model ${def.name}: column ${column} has type ${JSON.stringify(type)}; use one of ${[...COLUMN_TYPES].join(', ')}.`,
        { model: def.name, column },
      )
    }
  }
}

/** The type conversions implied by a declared SQL type. */
export function typeFromSql(declared: string): ColumnType {
  const t = declared.toUpperCase()
  if (t.includes('BOOL')) return 'boolean'
  if (t.includes('JSON')) return 'json'
  if (t.includes('INT')) return 'integer'
  if (t.includes('CHAR') || t.includes('CLOB') || t.includes('TEXT')) return 'text'
  if (t.includes('REAL') || t.includes('FLOA') || t.includes('DOUB')) return 'real'
  return 'any'
}

interface ColumnInfo {
  name: string
  type: string
  pk: number
  hidden: number
}

/**
 * Resolves a definition against the database: reads an existing table's
 * columns and key, or creates the table from the declared columns.
 */
export function resolveModel(db: Database.Database, def: ModelDefinition): ModelInfo {
  checkDefinition(def)
  const table = def.table ?? def.name
  const exists = db.prepare("SELECT type FROM sqlite_master WHERE name = ? AND type IN ('table', 'view')").get(table) as
    | { type: string }
    | undefined
  if (exists?.type === 'view') {
    throw invalid(`Model ${def.name}: ${table} is a view; mirror the table behind it.`, { model: def.name, table })
  }
  if (!exists) createTable(db, def, table)
  const info = (db.prepare(`PRAGMA table_xinfo(${quoteIdent(table)})`).all() as ColumnInfo[]).filter(
    (c) => c.hidden === 0,
  )
  const keys = info
    .filter((c) => c.pk > 0)
    .sort((a, b) => a.pk - b.pk)
    .map((c) => c.name)
  if (keys.length === 0) {
    throw invalid(
      `Table ${table} (model ${def.name}) has no declared primary key. A mirrored row needs an identity that is the same on every device, and rowids are not: declare a PRIMARY KEY (e.g. "id TEXT PRIMARY KEY"), in a new table if need be.`,
      { model: def.name, table },
    )
  }
  const declared = def.primaryKey === undefined ? undefined : [def.primaryKey].flat()
  if (declared !== undefined && declared.join('\u0000') !== keys.join('\u0000')) {
    throw invalid(
      `Model ${def.name} declares primary key ${declared.join(', ')}, but table ${table}'s primary key is ${keys.join(', ')}.`,
      { model: def.name, table, declared: declared.join(', '), actual: keys.join(', ') },
    )
  }
  const columns = new Map<string, ColumnType>()
  for (const c of info) columns.set(c.name, typeFromSql(c.type))
  const missing = Object.keys(def.columns ?? {}).filter((c) => !columns.has(c))
  if (missing.length > 0) {
    throw invalid(
      `Model ${def.name} declares column(s) ${missing.join(', ')} that table ${table} does not have. Add them to the table (ALTER TABLE … ADD COLUMN) or remove them from the model.`,
      { model: def.name, table, missing },
    )
  }
  for (const [column, type] of Object.entries(def.columns ?? {})) columns.set(column, type)
  const keyMode = def.keys ?? 'global'
  // The table's own declaration decides (a model may read the key as text: it holds document ids).
  const keyType = info.find((c) => c.name === keys[0])?.type ?? ''
  if (keyMode === 'local' && (keys.length !== 1 || typeFromSql(keyType) !== 'integer')) {
    throw invalid(
      `Model ${def.name}: keys "local" needs a single INTEGER primary key (each device allocates its own), but table ${table}'s key is ${keys.join(', ')}. Use keys "global".`,
      { model: def.name, table },
    )
  }
  return {
    name: def.name,
    table,
    keys,
    columns,
    foreignKeys: readForeignKeys(db, table),
    keyMode,
    localRefs: new Map(keyMode === 'local' ? [[keys[0]!, def.name]] : []),
  }
}

function createTable(db: Database.Database, def: ModelDefinition, table: string): void {
  const columns = def.columns
  if (!columns || Object.keys(columns).length === 0) {
    throw invalid(
      `Table ${table} for model ${def.name} does not exist and the model declares no columns to create it with. Create the table, or declare its columns.`,
      { model: def.name, table },
    )
  }
  const pk = def.primaryKey === undefined ? ['id'] : [def.primaryKey].flat()
  const notDeclared = pk.filter((k) => !(k in columns))
  if (notDeclared.length > 0) {
    throw invalid(`Model ${def.name}: primary key ${notDeclared.join(', ')} is not among its declared columns.`, {
      model: def.name,
      primaryKey: pk.join(', '),
    })
  }
  const single = pk.length === 1 ? pk[0] : undefined
  const parts = Object.entries(columns).map(([name, type]) => {
    const sqlType = SQL_TYPE[type]
    const key = name === single ? ` PRIMARY KEY${type === 'integer' ? '' : ' NOT NULL'}` : ''
    return `${quoteIdent(name)}${sqlType ? ` ${sqlType}` : ''}${key}`
  })
  if (single === undefined) parts.push(`PRIMARY KEY (${pk.map(quoteIdent).join(', ')})`)
  db.exec(`CREATE TABLE IF NOT EXISTS ${quoteIdent(table)} (${parts.join(', ')})`)
}
