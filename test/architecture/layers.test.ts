import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

// The layer rules of docs/architecture.md, read off the sources: which
// folders of src/ each folder may import from. Tests beside the sources are
// exempt; they may reach anything.
const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../src')

/** Folders of src/ that each folder must not import from. */
const FORBIDDEN: Record<string, string[]> = {
  util: [
    'mesh',
    'engine',
    'replication',
    'hub',
    'ditto',
    'instance',
    'repository',
    'bridge',
    'config',
    'cli',
    'codegen',
    'demo',
    'postgres',
  ],
  mesh: [
    'engine',
    'replication',
    'hub',
    'ditto',
    'instance',
    'repository',
    'bridge',
    'config',
    'cli',
    'codegen',
    'demo',
    'postgres',
  ],
  // The instance manager owns directories, locks and sharing for any store: it names none.
  instance: [
    'mesh',
    'engine',
    'replication',
    'hub',
    'ditto',
    'repository',
    'bridge',
    'config',
    'cli',
    'codegen',
    'demo',
    'postgres',
  ],
  // The bridge speaks to the two ports only.
  bridge: ['engine', 'replication', 'hub', 'ditto', 'instance', 'config', 'cli', 'demo', 'postgres'],
  repository: ['engine', 'replication', 'hub', 'ditto', 'instance', 'bridge', 'config', 'cli', 'demo', 'postgres'],
  // The Postgres repository implements the Repository port beside the SQLite one, and knows nothing above it.
  postgres: [
    'engine',
    'replication',
    'hub',
    'ditto',
    'instance',
    'bridge',
    'config',
    'cli',
    'demo',
    'codegen',
    'dashboard',
  ],
  engine: ['replication', 'hub', 'ditto', 'repository', 'bridge', 'config', 'cli', 'demo', 'postgres'],
  // The hub link is a sibling of peer replication: it drives the builtin engine and knows nothing above it.
  hub: [
    'replication',
    'ditto',
    'instance',
    'repository',
    'bridge',
    'config',
    'cli',
    'codegen',
    'demo',
    'dashboard',
    'postgres',
  ],
  ditto: ['engine', 'replication', 'hub', 'repository', 'bridge', 'config', 'cli', 'demo', 'postgres'],
  // The dashboard reads a running peer through its own small interface (DashboardSource), never its internals.
  dashboard: [
    'engine',
    'replication',
    'hub',
    'ditto',
    'instance',
    'repository',
    'bridge',
    'config',
    'cli',
    'codegen',
    'demo',
    'postgres',
  ],
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const path = join(dir, e.name)
    if (e.isDirectory()) return sources(path)
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [path] : []
  })
}

/** Relative module specifiers of a file: static imports, re-exports and dynamic imports. */
function specifiers(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  const out: string[] = []
  for (const m of text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)) out.push(m[1]!)
  return out
}

function breaches(folder: string): string[] {
  const forbidden = FORBIDDEN[folder]!
  const out: string[] = []
  for (const file of sources(join(SRC, folder))) {
    for (const spec of specifiers(file)) {
      const target = relative(SRC, resolve(dirname(file), spec)).split('/')[0]!
      if (forbidden.includes(target)) out.push(`${relative(SRC, file)} imports ${spec}`)
    }
  }
  return out
}

describe('layer rules', () => {
  it('sees the imports it checks (a folder importing its neighbours is found)', () => {
    // The engine imports the mesh port: if this finds nothing, the scan is broken, not the code clean.
    const found = sources(join(SRC, 'engine')).flatMap(specifiers)
    expect(found.some((s) => s.startsWith('../mesh/'))).toBe(true)
  })

  for (const folder of Object.keys(FORBIDDEN)) {
    it(`src/${folder}/ imports only the layers below it`, () => {
      expect(breaches(folder)).toEqual([])
    })
  }
})
