import type { BackupLinkSpec, Document, Row, SyncAdapter } from '../../../src/index.js'

/** An adapter copying columns to fields one to one, keyed by `id`. Receives everything by default. */
export function plainAdapter(
  model: string,
  options: Partial<SyncAdapter> & { links?: BackupLinkSpec[] } = {},
): SyncAdapter {
  const { links, ...rest } = options
  return {
    model,
    collection: model,
    observerQuery: () => ({}),
    documentId: (row: Row) => String(row.id),
    toDocument: (row: Row) => {
      const { id, ...fields } = row
      return { ...fields, _id: String(id) } as Document
    },
    fromDocument: (doc: Document) => {
      const { _id, ...fields } = doc
      return { id: _id, ...fields }
    },
    ...(links ? { backup: { links } } : {}),
    ...rest,
  }
}
