import { rejectDocument, type SyncAdapter } from '../bridge/adapter.js'
import type { Document, JsonValue } from '../mesh/document.js'
import { jsonEqual } from '../mesh/json.js'
import type { ColumnType, ModelDefinition } from '../repository/model-definition.js'
import type { Row } from '../repository/repository.js'
import { keyValues, rowId } from '../repository/row-key.js'
import { isTagged, keyFromText, keyText } from '../repository/value-codec.js'
import type { TableMapping } from './config-schema.js'
import { configError } from './load-config.js'
import type { DatabaseSchema, TableColumn } from './table-schema.js'

/** A table mapping resolved against the database: the repository model and its adapter. */
export interface MappedTable {
  definition: ModelDefinition
  adapter: SyncAdapter
  /** The columns mirrored (key first). */
  columns: string[]
}

const NAME_RE = /^[A-Za-z_][A-Za-z0-9_]*$/

function fits(value: JsonValue, c: TableColumn): boolean {
  // A BLOB, a big INTEGER or a REAL kept REAL (value-codec.ts): SQLite stores any of them in any column.
  if (typeof value === 'object' && value !== null && isTagged(value)) return true
  switch (c.type as ColumnType) {
    case 'text':
      return typeof value === 'string'
    case 'integer':
      return typeof value === 'number' && Number.isInteger(value)
    case 'real':
      return typeof value === 'number'
    case 'boolean':
      // Mirrored as the app stored it: 0/1 most often, but SQLite keeps whatever it is given.
      return typeof value !== 'object'
    case 'json':
      return true
    default:
      return typeof value !== 'object'
  }
}

/** Why a table without a declared primary key is not mirrored. */
export const NO_KEY_REASON =
  'has no declared primary key: a mirrored row needs an identity that is the same on every device, and rowids are not. Declare a PRIMARY KEY (in a new table if need be) to mirror it.'

/**
 * Derives the adapter of a table from its schema: one document per row,
 * `_id` the primary key as a string (a composite key as the JSON array of
 * its values, its columns staying fields too), one field per mirrored column under
 * the column's own name. Checks the mapping against the table first, and
 * throws `INVALID_CONFIG` naming the key (`tables[2].counters`) otherwise.
 */
export function mapTable(
  mapping: TableMapping,
  index: number,
  schema: DatabaseSchema,
  source: string,
  /** The tables mapped with keys `local`: the columns referencing them carry document ids. */
  localTables: ReadonlySet<string> = new Set(),
): MappedTable {
  const at = (k?: string) => `tables[${index}]${k ? `.${k}` : ''}`
  const table = schema.tables.get(mapping.table)
  if (!table) {
    const known = [...schema.tables.keys()]
    throw configError(
      source,
      at('table'),
      `no table ${JSON.stringify(mapping.table)} in ${schema.file}; it has ${known.length ? known.join(', ') : 'no tables'}.`,
    )
  }
  if (table.kind === 'virtual') {
    throw configError(
      source,
      at('table'),
      `table ${table.name} is a virtual table; mirror the tables it is built from.`,
    )
  }
  const keys = table.columns.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk)
  if (keys.length === 0) throw configError(source, at('table'), `table ${table.name} ${NO_KEY_REASON}`)
  const keyNames = keys.map((k) => k.name)
  if (mapping.id !== undefined && [mapping.id].flat().join('\u0000') !== keyNames.join('\u0000')) {
    throw configError(
      source,
      at('id'),
      `table ${table.name}'s primary key is ${keyNames.join(', ')}, not ${[mapping.id].flat().join(', ')}.`,
    )
  }
  const direction = mapping.direction ?? 'bidirectional'
  const integerKey = keys.length === 1 && keys[0]!.type === 'integer'
  if (mapping.keys === 'local' && !integerKey) {
    throw configError(
      source,
      at('keys'),
      `table ${table.name}'s key is ${keyNames.join(', ')}, not a single INTEGER column: keys "local" is for integer keys each device allocates. Use "global".`,
    )
  }
  if (mapping.keys === undefined && integerKey && direction === 'bidirectional') {
    throw configError(
      source,
      at('keys'),
      `table ${table.name} has an integer primary key (${keyNames[0]}) and is mirrored both ways: say how its keys identify rows. "local" if every device creates rows (sales, invoices: each device's SQLite allocates the same numbers, and "local" keeps such rows apart), "global" if a key is the same row everywhere (one device creates the rows, or the app assigns the ids). See docs/keys.md.`,
    )
  }
  // Columns holding document ids of a `local` table: its own key, and foreign keys referencing one.
  const meshIds = new Set<string>(mapping.keys === 'local' ? [keyNames[0]!] : [])
  for (const fk of table.foreignKeys) {
    const parent = fk.from.length === 1 ? schema.tables.get(fk.table) : undefined
    const parentKey = parent?.columns.filter((c) => c.pk > 0)
    if (parent && localTables.has(parent.name) && parentKey?.length === 1 && parentKey[0]!.name === fk.to[0]) {
      meshIds.add(fk.from[0]!)
    }
  }
  const model = mapping.collection ?? table.name
  if (!NAME_RE.test(model) || model.length > 64) {
    throw configError(
      source,
      at('collection'),
      `table ${table.name} needs a collection name of letters, digits and _ (at most 64).`,
    )
  }
  const byName = new Map(table.columns.map((c) => [c.name, c]))
  const need = (k: string, names: readonly string[]) => {
    const missing = names.filter((n) => !byName.has(n))
    if (missing.length > 0) {
      throw configError(
        source,
        at(k),
        `table ${table.name} has no column ${missing.join(', ')}; its columns are ${[...byName.keys()].join(', ')}.`,
      )
    }
  }
  const scope = mapping.scope ?? {}
  const counters = mapping.counters ?? []
  const exclude = new Set(mapping.exclude ?? [])
  need('scope', Object.keys(scope))
  need('counters', counters)
  need('exclude', [...exclude])
  for (const c of counters) {
    if (!['integer', 'real', 'any'].includes(byName.get(c)!.type)) {
      throw configError(source, at('counters'), `column ${c} of ${table.name} is not numeric; counters must be.`)
    }
  }
  const kept = [...keyNames, ...Object.keys(scope), ...counters].filter((c) => exclude.has(c))
  if (kept.length > 0) {
    throw configError(
      source,
      at('exclude'),
      `${kept.join(', ')} cannot be excluded: the key, scope and counter columns are mirrored.`,
    )
  }
  // A single key is the document's _id; a composite key's columns also stay fields.
  const single = keys.length === 1 ? keys[0]! : undefined
  const fields = table.columns
    .filter((c) => c !== single && !exclude.has(c.name))
    .map((c): TableColumn => (meshIds.has(c.name) ? { ...c, type: 'text' } : c))
  const info = { name: model, keys: keyNames }
  const idOf = (row: Row) => {
    if (single) {
      const v = row[single.name]
      if (v === null || v === undefined || v === '') rejectDocument(`${table.name} row without ${single.name}`)
      return keyText(v)
    }
    try {
      return rowId(info, row)
    } catch {
      return rejectDocument(`${table.name} row without a value for its key ${keyNames.join(', ')}`)
    }
  }
  const adapter: SyncAdapter = {
    model,
    collection: model,
    direction,
    counterFields: counters,
    documentId: idOf,
    toDocument(row) {
      const doc: Document = { _id: idOf(row) }
      for (const c of fields) doc[c.name] = row[c.name] ?? null
      return doc
    },
    fromDocument(doc) {
      const row: Row = {}
      if (single) {
        let id: JsonValue = doc._id
        if ((single.type === 'integer' || single.type === 'real') && !meshIds.has(single.name)) {
          id = keyFromText(doc._id)
          if (typeof id === 'number' && !Number.isFinite(id))
            rejectDocument(`_id ${JSON.stringify(doc._id)} is not a number`, { field: '_id' })
        }
        row[single.name] = id
      } else {
        let values: (string | number)[]
        try {
          values = keyValues(info, doc._id)
        } catch (error) {
          return rejectDocument((error as Error).message, { field: '_id' })
        }
        keys.forEach((k, i) => {
          const field = doc[k.name]
          if (field !== undefined && field !== null && !jsonEqual(field, values[i]!)) {
            rejectDocument(`${k.name} is ${JSON.stringify(field)} but the _id says ${JSON.stringify(values[i])}`, {
              field: k.name,
            })
          }
        })
      }
      for (const c of fields) {
        const v = doc[c.name]
        if (v === undefined || v === null) {
          if (c.notNull && !(v === undefined && c.hasDefault)) rejectDocument(`${c.name} is missing`, { field: c.name })
          if (v === null || !c.hasDefault) row[c.name] = null
          continue
        }
        if (!fits(v, c)) rejectDocument(`${c.name}: expected ${c.declared || 'a scalar'}, got ${JSON.stringify(v)}`)
        row[c.name] = v
      }
      if (!single) {
        const values = keyValues(info, doc._id)
        keys.forEach((k, i) => {
          row[k.name] = values[i]!
        })
      }
      return row
    },
  }
  if (direction !== 'sendOnly') {
    const entries = Object.entries(scope)
    adapter.observerQuery = () => Object.fromEntries(entries)
    adapter.shouldApplyRemote = (doc) => entries.every(([c, v]) => doc[c] === v)
  }
  // BOOLEAN columns come back as stored (0/1, or whatever the app wrote), not as true/false.
  const asStored = table.columns.filter((c) => c.type === 'boolean').map((c) => [c.name, 'any'] as const)
  return {
    definition: {
      name: model,
      table: table.name,
      primaryKey: single ? single.name : keyNames,
      ...(mapping.keys === undefined ? {} : { keys: mapping.keys }),
      ...(asStored.length > 0 ? { columns: Object.fromEntries(asStored) } : {}),
    },
    adapter,
    columns: single ? [single.name, ...fields.map((c) => c.name)] : fields.map((c) => c.name),
  }
}
