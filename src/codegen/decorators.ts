import type { BackupLink as BackupLinkSpec, Direction } from '../bridge/adapter.js'
import type { FieldTypeInput } from './define-model.js'

/**
 * Decorators that mark a model class for `meshmirror generate`. They are
 * standard (TC39) decorators and only record what they were given: the
 * generator reads the source, and the class itself is unchanged.
 *
 * @example
 * ```ts
 * @SyncModel('counters', { scope: ['branchId'] })
 * export class Counter {
 *   @Id() id!: string
 *   @Field({ column: 'branch_id', alias: 'branch_id' }) branchId!: number
 *   @CounterField() stock!: number
 *   @Ignore() cached?: unknown
 * }
 * ```
 */
export interface SyncModelOptions {
  /** Repository model (table). Default: the collection name. */
  model?: string
  direction?: Direction
  hydrateOnStartup?: boolean
  backupPull?: boolean
  /** Document fields that must equal context values: `['branchId']` or `{ branchId: 'currentBranch' }`. */
  scope?: readonly string[] | Readonly<Record<string, string>>
  /** `local` for rows every device creates under integer keys SQLite allocates (the key field then holds document ids: declare it as a string). */
  keys?: 'global' | 'local'
}

export interface FieldOptions {
  /** Document field name. Default: the property name. */
  name?: string
  /** Repository column. Default: the property name. */
  column?: string
  /** Other document field names accepted when reading. */
  alias?: string | readonly string[]
  /** Overrides the type read from the declaration (e.g. `'integer'` for a `number`). */
  type?: FieldTypeInput
}

/** Any class, abstract or not: what the decorators and `decoratedModel` accept. */
export type AnyClass = abstract new (...args: never[]) => unknown

/** What the decorators recorded for a class. */
export interface DecoratedModel {
  collection: string
  options: SyncModelOptions
  fields: { property: string; kind: 'id' | 'field' | 'counter' | 'link' | 'ignore'; options: unknown }[]
}

const models = new WeakMap<AnyClass, DecoratedModel>()
// Field decorators run before their class decorator; it collects them.
let pending: DecoratedModel['fields'] = []

function fieldDecorator(kind: DecoratedModel['fields'][number]['kind'], options: unknown) {
  return (_value: undefined, context: ClassFieldDecoratorContext): void => {
    pending.push({ property: String(context.name), kind, options })
  }
}

export function SyncModel(collection: string, options: SyncModelOptions = {}) {
  return (target: AnyClass, _context: ClassDecoratorContext): void => {
    models.set(target, { collection, options, fields: pending })
    pending = []
  }
}

/** The primary key; its value is the document `_id`. */
export const Id = (options: FieldOptions = {}) => fieldDecorator('id', options)
/** A synced field (every non-ignored property is one; use this to rename, alias or retype it). */
export const Field = (options: FieldOptions = {}) => fieldDecorator('field', options)
/** A numeric counter field. */
export const CounterField = (options: FieldOptions = {}) => fieldDecorator('counter', options)
/** A backup-restore link to another model through this field. */
export const BackupLink = (link: Omit<BackupLinkSpec, 'field'>) => fieldDecorator('link', link)
/** A property that is not synced. */
export const Ignore = () => fieldDecorator('ignore', {})

/** What the decorators recorded for a class, if it is a sync model. */
export function decoratedModel(cls: AnyClass): DecoratedModel | undefined {
  return models.get(cls)
}
