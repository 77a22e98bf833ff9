import { existsSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import type { Command } from 'commander'
import { loadConfig } from '../config/load-config.js'
import { readStoreConflicts } from '../engine/conflict-log.js'
import { STORE_FILE } from '../engine/database.js'
import { ErrorCode, StorageError, ValidationError } from '../errors.js'
import { directoryUnusable } from '../instance/fs-errors.js'
import type { ConflictRecord, ConflictVersion } from '../mesh/conflict.js'
import { assertCollection } from '../mesh/validate.js'
import { integerOption } from './option-parsers.js'
import { makeOutput, reportError } from './output.js'
import { describeConflict } from './peer-display.js'

const HELP = `
Versions that lost a merge, kept so a person can repair the row:
  create  a row created on two devices under the same key while neither had
          seen the other's; the later one won (its columns win where both
          wrote, the other's remaining columns stay)
  update  a column changed on two devices at once; the later change won
          (only for tables with "recordConflicts": true)
Every device keeps the merged row; to keep what was lost, write it back to
the row on any device. Read from the store without locking it: a running
peer may hold the directory.

Examples:
  $ meshmirror conflicts --dir ./pos-mesh
  $ meshmirror conflicts -c meshmirror.config.json --collection orders --json | jq '.conflicts[].loser'

Exit codes:
  0  listed (an empty list included)
  1  wrong input: no such directory, no mesh store in it, a bad option
  2  an unexpected failure`

/** What `meshmirror conflicts` reports. */
export interface ConflictsReport {
  dir: string
  siteId: string | null
  /** How many are kept (in the collection asked for), whatever `--limit` lists. */
  total: number
  /** The latest first. */
  conflicts: ConflictRecord[]
}

/** Reads the conflicts kept in a mesh directory, without opening it for writing or taking its lock. */
export function readConflicts(dirInput: string, query: { collection?: string; limit: number }): ConflictsReport {
  const dir = resolve(dirInput)
  let isDir: boolean
  try {
    isDir = statSync(dir).isDirectory()
  } catch (error) {
    throw directoryUnusable(dir, 'read', error)
  }
  if (!isDir) {
    throw new StorageError(ErrorCode.DIRECTORY_UNUSABLE, `${dir} is a file, not a mesh directory.`, {
      details: { dir },
    })
  }
  const file = join(dir, STORE_FILE)
  if (!existsSync(file)) {
    throw new StorageError(
      ErrorCode.STORE_INCOMPATIBLE,
      `${dir} holds no builtin mesh store (no ${STORE_FILE}). Check the path; a Ditto mesh keeps no conflicts.`,
      { details: { dir } },
    )
  }
  const found = readStoreConflicts(file, query)
  return { dir, siteId: found.siteId ?? null, total: found.total, conflicts: found.conflicts }
}

function side(v: ConflictVersion, here: string | null): string {
  return `site ${v.site}${v.site === here ? ' (this device)' : ''}, written ${v.writtenAt}`
}

/** The report for people: each conflict with both versions. */
export function describeConflicts(r: ConflictsReport): string[] {
  const n = r.total
  const lines = [`${r.dir}${r.siteId ? ` (site ${r.siteId})` : ''}: ${n} conflict${n === 1 ? '' : 's'}`]
  for (const c of r.conflicts) {
    lines.push(`#${c.seq} ${describeConflict(c)} (recorded ${c.detectedAt})`)
    lines.push(`    kept  ${side(c.winner, r.siteId)}: ${JSON.stringify(c.winner.content)}`)
    lines.push(`    lost  ${side(c.loser, r.siteId)}: ${JSON.stringify(c.loser.content)}`)
  }
  if (r.conflicts.length < n) lines.push(`  … ${n - r.conflicts.length} more (--limit)`)
  if (n > 0) lines.push('The rows hold the kept versions on every device; write a lost value back to keep it.')
  return lines
}

/** `meshmirror conflicts (--dir D | -c CONFIG) [--collection C] [--limit N] [--json]`. */
export function registerConflictsCommand(program: Command): void {
  program
    .command('conflicts')
    .description(
      'list versions that lost a merge (rows created twice under one key, concurrent changes), kept to repair',
    )
    .option('--dir <dir>', 'the mesh directory (the config\'s "mesh.dir")')
    .option('-c, --config <file>', 'read the mesh directory from this config file (default meshmirror.config.json)')
    .option('--collection <name>', 'only this collection')
    .option('--limit <n>', 'at most this many, the latest first', integerOption, 100)
    .option('--json', 'print one JSON document on stdout')
    .addHelpText('after', HELP)
    .action(async (opts: { dir?: string; config?: string; collection?: string; limit: number; json?: boolean }) => {
      const output = makeOutput(opts.json === true)
      try {
        if (opts.dir !== undefined && opts.config !== undefined) {
          throw new ValidationError(ErrorCode.INVALID_OPTIONS, 'Give --dir or --config, not both.')
        }
        if (!Number.isSafeInteger(opts.limit) || opts.limit <= 0) {
          throw new ValidationError(ErrorCode.INVALID_OPTIONS, '--limit must be a positive integer.')
        }
        if (opts.collection !== undefined) assertCollection(opts.collection)
        const dir = opts.dir ?? (await loadConfig(opts.config ?? 'meshmirror.config.json')).mesh.dir
        const report = readConflicts(dir, {
          ...(opts.collection === undefined ? {} : { collection: opts.collection }),
          limit: opts.limit,
        })
        output.out(output.json ? JSON.stringify(report, null, 2) : describeConflicts(report).join('\n'))
      } catch (error) {
        process.exitCode = reportError(output, error)
      }
    })
}
