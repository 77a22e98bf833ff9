import { afterEach, describe, expect, it } from 'vitest'
import { ChangeHistory, type HistoryReads } from '../../src/ditto/change-history.js'
import { ChangeLog } from '../../src/ditto/change-log.js'
import type { Document } from '../../src/mesh/document.js'
import { tempDirs } from '../bridge/helpers/wait.js'

const dirs = tempDirs()
afterEach(() => dirs.cleanup())

describe('Ditto change history', () => {
  it('reports a write noted while a page reads its documents on the next page, not past it', async () => {
    const log = ChangeLog.open(dirs.make('h'))
    try {
      const store = new Map<string, Document>([['a', { _id: 'a', n: 1 }]])
      // Another write commits (and is noted) while the page is reading its documents, as in a real store.
      let during: (() => void) | undefined
      const reads: HistoryReads = {
        collection: async () => new Map(store),
        byIds: async (_c, ids) => {
          during?.()
          during = undefined
          return new Map(ids.flatMap((id) => (store.has(id) ? [[id, store.get(id)!] as const] : [])))
        },
      }
      const history = new ChangeHistory(log, reads)
      const start = await history.since(null, { collection: 'docs' }, {})
      log.noteLocal([{ collection: 'docs', id: 'a', removed: false }])
      store.set('a', { _id: 'a', n: 2 })
      during = () => {
        store.set('b', { _id: 'b', n: 1 })
        log.noteLocal([{ collection: 'docs', id: 'b', removed: false }])
      }
      const page = await history.since(start.cursor, { collection: 'docs' }, {})
      expect(page.changed.map((d) => d._id)).toEqual(['a'])
      const next = await history.since(page.cursor, { collection: 'docs' }, {})
      expect(next.changed).toEqual([{ _id: 'b', n: 1 }])
    } finally {
      log.close()
    }
  })
})
