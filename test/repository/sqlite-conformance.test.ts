import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openSqliteRepository } from '../../src/index.js'
import { runRepositoryConformance } from '../../src/testing.js'

// The SQLite repository passes the Repository port's contract, as every other implementation must.
runRepositoryConformance(
  async (models) => {
    const dir = mkdtempSync(join(tmpdir(), 'mm-repo-conformance-'))
    const repository = await openSqliteRepository({ file: join(dir, 'app.db'), models })
    return { repository, cleanup: () => rmSync(dir, { recursive: true, force: true }) }
  },
  { name: 'SQLite' },
)
