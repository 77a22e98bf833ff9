import { existsSync } from 'node:fs'
import Database from 'better-sqlite3'
import type { Command } from 'commander'
import { loadConfig } from '../config/load-config.js'
import { ErrorCode, StorageError, ValidationError } from '../errors.js'
import { isPostgresUrl, readPostgresParked, redactUrl } from '../postgres/postgres-repository.js'
import { ParkedStore } from '../repository/parked-store.js'
import type { ParkedDocument } from '../repository/repository.js'
import { integerOption } from './option-parsers.js'
import { makeOutput, reportError } from './output.js'

const HELP = `
Received documents that are not in the database, with why:
  parked   its parent row (by a foreign key) is not there yet; it is applied
           as soon as the parent lands, whichever device writes it
  refused  the table or the adapter refused it (a constraint, a column the
           table lacks, a malformed document); it is tried again at every
           start, so fix the cause (schema, config) and restart the peer

Examples:
  $ meshmirror parked -c meshmirror.config.json
  $ meshmirror parked -c meshmirror.config.json --state refused --json | jq '.entries[].reason'

Exit codes:
  0  listed (an empty list included)
  1  wrong input: no config, no database
  2  an unexpected failure`

/** What `meshmirror parked` reports. */
export interface ParkedReport {
  database: string
  parked: number
  refused: number
  entries: {
    collection: string
    id: string
    state: ParkedDocument['state']
    op: ParkedDocument['op']
    reason: string
    code: string | null
    waitsFor: string | null
    since: string
    attempts: number
  }[]
}

/** Reads the parked and refused documents of a database, without writing anything. */
export function readParked(file: string, options: { state?: ParkedDocument['state']; limit: number }): ParkedReport {
  if (!existsSync(file)) {
    throw new StorageError(ErrorCode.DATABASE_UNUSABLE, `No database at ${file}.`, { details: { file } })
  }
  const db = new Database(file, { readonly: true, fileMustExist: true })
  try {
    const exists = db.prepare("SELECT 1 FROM sqlite_master WHERE name = '_meshmirror_parked'").get()
    if (!exists) return { database: file, parked: 0, refused: 0, entries: [] }
    const store = new ParkedStore(db)
    const counts = store.counts()
    return {
      database: file,
      ...counts,
      entries: store.list(options).map(reportEntry),
    }
  } finally {
    db.close()
  }
}

/** A kept document as `meshmirror parked` reports it. */
function reportEntry(e: ParkedDocument): ParkedReport['entries'][number] {
  return {
    collection: e.model,
    id: e.id,
    state: e.state,
    op: e.op,
    reason: e.reason,
    code: e.code,
    waitsFor: e.waitsFor,
    since: new Date(e.since).toISOString(),
    attempts: e.attempts,
  }
}

async function readParkedPostgres(
  url: string,
  syncSchema: string | undefined,
  options: { state?: ParkedDocument['state']; limit: number },
): Promise<ParkedReport> {
  const r = await readPostgresParked(url, { ...options, ...(syncSchema ? { syncSchema } : {}) })
  return {
    database: redactUrl(url),
    parked: r.parked,
    refused: r.refused,
    entries: r.entries.map(reportEntry),
  }
}

/** `meshmirror parked -c CONFIG [--state S] [--limit N] [--json]`. */
export function registerParkedCommand(program: Command): void {
  program
    .command('parked')
    .description('list received documents not in the database (parked for a parent, or refused), with why')
    .option('-c, --config <file>', 'the config file', 'meshmirror.config.json')
    .option('--state <state>', 'only "parked" or only "refused"')
    .option('--limit <n>', 'at most this many entries', integerOption, 1000)
    .option('--json', 'print one JSON document on stdout')
    .addHelpText('after', HELP)
    .action(async (opts: { config: string; state?: string; limit: number; json?: boolean }) => {
      const output = makeOutput(opts.json === true)
      try {
        if (opts.state !== undefined && opts.state !== 'parked' && opts.state !== 'refused') {
          throw new ValidationError(
            ErrorCode.INVALID_OPTIONS,
            `--state must be "parked" or "refused", not "${opts.state}".`,
          )
        }
        if (!Number.isSafeInteger(opts.limit) || opts.limit <= 0) {
          throw new ValidationError(ErrorCode.INVALID_OPTIONS, '--limit must be a positive integer.')
        }
        const config = await loadConfig(opts.config)
        const options = {
          ...(opts.state ? { state: opts.state as ParkedDocument['state'] } : {}),
          limit: opts.limit,
        }
        const report = isPostgresUrl(config.database)
          ? await readParkedPostgres(config.database, config.postgres?.syncSchema, options)
          : readParked(config.database, options)
        if (output.json) {
          output.out(JSON.stringify(report, null, 2))
          return
        }
        output.out(`${report.database}: ${report.parked} parked, ${report.refused} refused`)
        for (const e of report.entries) {
          output.out(
            `  ${e.state.padEnd(7)} ${e.collection} ${e.id} (${e.op}, since ${e.since}, ${e.attempts} tries): ${e.reason}`,
          )
        }
        if (report.entries.length < report.parked + report.refused) {
          output.out(`  … ${report.parked + report.refused - report.entries.length} more (--limit)`)
        }
      } catch (error) {
        process.exitCode = reportError(output, error)
      }
    })
}
