import { existsSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { Command } from 'commander'
import { STORE_FILE } from '../engine/database.js'
import { openBuiltinStore } from '../engine/open-builtin-store.js'
import { ErrorCode, StorageError } from '../errors.js'
import { formatBytes, makeOutput, reportError } from './output.js'

/** What `meshmirror inspect` reports. */
export interface InspectReport {
  dir: string
  siteId: string
  sequence: number
  versionVector: Record<string, number>
  documents: number
  tombstones: number
  collections: Record<string, number>
  diskBytes: number
}

/** Reads a store's state without changing it. */
export async function inspectStore(dirInput: string): Promise<InspectReport> {
  const dir = resolve(dirInput)
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new StorageError(
      ErrorCode.DIRECTORY_UNUSABLE,
      `${dir} is not a directory. Pass the mesh directory with --dir.`,
      {
        details: { dir },
      },
    )
  }
  if (!existsSync(join(dir, STORE_FILE))) {
    throw new StorageError(ErrorCode.STORE_INCOMPATIBLE, `${dir} holds no meshmirror store (no ${STORE_FILE}).`, {
      details: { dir },
    })
  }
  const mesh = await openBuiltinStore({ dir })
  try {
    const stats = await mesh.stats()
    const collections: Record<string, number> = {}
    for (const name of await mesh.collections()) collections[name] = await mesh.count({ collection: name })
    return {
      dir: mesh.dir,
      siteId: mesh.siteId,
      sequence: stats.sequence,
      versionVector: await mesh.versionVector(),
      documents: stats.documents,
      tombstones: stats.tombstones,
      collections,
      diskBytes: stats.diskBytes,
    }
  } finally {
    await mesh.close()
  }
}

export function registerInspectCommand(program: Command): void {
  program
    .command('inspect')
    .description('show the state of a builtin mesh store: site, sequence, version vector, documents per collection')
    .requiredOption('--dir <dir>', 'the mesh persistence directory')
    .option('--json', 'print one JSON document')
    .action(async (opts: { dir: string; json?: boolean }) => {
      const output = makeOutput(opts.json === true)
      try {
        const report = await inspectStore(opts.dir)
        if (output.json) {
          output.out(JSON.stringify(report, null, 2))
          return
        }
        const lines = [
          `mesh store   ${report.dir}`,
          `site         ${report.siteId}`,
          `sequence     ${report.sequence}`,
          `documents    ${report.documents} (+ ${report.tombstones} tombstones)`,
          `disk         ${formatBytes(report.diskBytes)}`,
          'collections',
          ...Object.entries(report.collections).map(([name, n]) => `  ${name.padEnd(24)} ${n}`),
          'version vector',
          ...Object.entries(report.versionVector).map(([site, seq]) => `  ${site.padEnd(24)} ${seq}`),
        ]
        output.out(lines.join('\n'))
      } catch (error) {
        process.exitCode = reportError(output, error)
      }
    })
}
