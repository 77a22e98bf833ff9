import { pathToFileURL } from 'node:url'
import type { SyncAdapter, SyncContext } from '../bridge/adapter.js'
import { isPostgresUrl } from '../postgres/postgres-repository.js'
import type { ModelDefinition } from '../repository/model-definition.js'
import { configError, type ResolvedConfig } from './load-config.js'
import { readPostgresSchema } from './postgres-schema.js'
import { mapTable } from './table-adapter.js'
import { type DatabaseSchema, readDatabaseSchema } from './table-schema.js'

/** What a config mirrors: repository models, their adapters, and the context. */
export interface ResolvedModels {
  schema: DatabaseSchema
  models: ModelDefinition[]
  adapters: SyncAdapter[]
  context: SyncContext
  /** The columns each table mapping mirrors, by model (not for adapters from a module). */
  columns: Map<string, string[]>
}

async function importAdapters(config: ResolvedConfig, source: string): Promise<[ModelDefinition[], SyncAdapter[]]> {
  const spec = config.adapters!
  let mod: Record<string, unknown>
  try {
    const target = spec.module.startsWith('/') ? pathToFileURL(spec.module).href : spec.module
    mod = (await import(target)) as Record<string, unknown>
  } catch (error) {
    throw configError(source, 'adapters.module', `${spec.module} cannot be loaded: ${(error as Error).message}`, error)
  }
  const adaptersName = spec.adapters ?? 'syncAdapters'
  const modelsName = spec.models ?? 'syncModels'
  const adapters = mod[adaptersName]
  const models = mod[modelsName]
  if (!Array.isArray(adapters)) {
    throw configError(
      source,
      'adapters.adapters',
      `${spec.module} has no export ${adaptersName} holding a list of adapters (exports: ${Object.keys(mod).join(', ') || 'none'}).`,
    )
  }
  if (!Array.isArray(models)) {
    throw configError(
      source,
      'adapters.models',
      `${spec.module} has no export ${modelsName} holding the models (exports: ${Object.keys(mod).join(', ') || 'none'}).`,
    )
  }
  return [models as ModelDefinition[], adapters as SyncAdapter[]]
}

/**
 * Resolves a config's models against its database, reading the schema
 * without writing: table mappings become derived adapters, an adapter
 * module is imported. Throws `INVALID_CONFIG` naming the offending key.
 */
export async function resolveModels(config: ResolvedConfig): Promise<ResolvedModels> {
  const source = config.file ?? 'config'
  const schema = isPostgresUrl(config.database)
    ? await readPostgresSchema(config.database, source, 'database', config.postgres?.schema)
    : readDatabaseSchema(config.database, source)
  const models: ModelDefinition[] = []
  const adapters: SyncAdapter[] = []
  const tables = new Set<string>()
  const columns = new Map<string, string[]>()
  const localTables = new Set((config.tables ?? []).filter((t) => t.keys === 'local').map((t) => t.table))
  for (const [i, mapping] of (config.tables ?? []).entries()) {
    if (tables.has(mapping.table)) throw configError(source, `tables[${i}].table`, `${mapping.table} is mapped twice.`)
    tables.add(mapping.table)
    const mapped = mapTable(mapping, i, schema, source, localTables)
    const clash = adapters.find((a) => a.collection === mapped.adapter.collection)
    if (clash) {
      throw configError(
        source,
        `tables[${i}].collection`,
        `collection ${clash.collection} is already mirrored by another table.`,
      )
    }
    models.push(mapped.definition)
    adapters.push(mapped.adapter)
    columns.set(mapped.definition.name, mapped.columns)
  }
  if (config.adapters) {
    const [more, moreAdapters] = await importAdapters(config, source)
    for (const m of more) {
      const table = m.table ?? m.name
      if (tables.has(table)) throw configError(source, 'adapters', `table ${table} is also in "tables"; map it once.`)
      if (!schema.tables.has(table)) {
        throw configError(source, 'adapters', `model ${m.name}: no table ${table} in ${schema.file}.`)
      }
    }
    models.push(...more)
    adapters.push(...moreAdapters)
  }
  return { schema, models, adapters, context: config.context ?? {}, columns }
}
