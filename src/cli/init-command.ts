import { randomBytes } from 'node:crypto'
import { existsSync, writeFileSync } from 'node:fs'
import { basename, dirname, extname, relative, resolve } from 'node:path'
import type { Command } from 'commander'
import type { MeshmirrorConfig, TableMapping } from '../config/config-schema.js'
import { configError } from '../config/load-config.js'
import { readPostgresSchema } from '../config/postgres-schema.js'
import { NO_KEY_REASON } from '../config/table-adapter.js'
import { type DatabaseSchema, readDatabaseSchema } from '../config/table-schema.js'
import { isPostgresUrl } from '../postgres/postgres-repository.js'
import { integerOption } from './option-parsers.js'
import { makeOutput, reportError } from './output.js'

const PEER_URL = /^wss?:\/\/\S+$/

const HELP = `
Examples:
  $ meshmirror init --database ./pos.db
  $ meshmirror init --database ./pos.db --out ./till-2.config.json --port 4041 --peer ws://10.0.0.12:4040
  $ meshmirror init --database ./pos.db --force          # replace an existing config
  $ meshmirror init --database ./pos.db --backend ditto  # mirror into a Ditto mesh instead
  $ meshmirror init --database postgres://mirror@db.example:5432/shop --out head-office.config.json

Every table with a declared primary key (one column or several) is listed;
tables without one, and virtual tables, are reported with the reason and
left out. A table keyed by one INTEGER column gets an explicit "keys"
choice, printed with why ("local": every device creates rows; "global":
a key is the same row everywhere). Review the file (keys, scope, counters,
exclude), share meshId and secret with the other devices, then run
\`meshmirror peer --config <file>\`. With --backend ditto the config has
no secret, port or peers: Ditto syncs through its own transports
(mesh.ditto.transports) once a licence token is set in the environment
(DITTO_LICENSE_TOKEN).

Exit codes:
  0  the config was written
  1  wrong input: no such database, not a SQLite file, the config exists (use --force)
  2  an unexpected failure`

/** What `init` proposes for a database: a config, the tables it left out with why, the key modes it chose with why. */
export interface StarterConfig {
  config: MeshmirrorConfig
  skipped: { table: string; reason: string }[]
  keys: { table: string; keys: 'global' | 'local'; reason: string }[]
}

/** The key mode `init` writes for a table with a single INTEGER key, and why. */
function integerKeyChoice(rows: number): { keys: 'local'; reason: string } {
  const existing =
    rows > 0
      ? ` Its ${rows} existing row${rows === 1 ? '' : 's'} become this device's rows: if every device starts from a copy of the same rows, choose "global".`
      : ''
  return {
    keys: 'local',
    reason: `SQLite allocates these integer keys on each device, so two devices give different rows the same key; "local" keeps such rows apart (the mesh names a row by the device that created it). Choose "global" if only one device creates rows (a catalogue kept at the back office) or the app assigns the ids.${existing}`,
  }
}

/** The key mode `init` writes for a Postgres table with a single integer key, and why. */
const POSTGRES_INTEGER_KEY = {
  keys: 'global' as const,
  reason:
    'the database allocates these keys itself (a sequence), so a key names the same row on every device. Rows tills create with their own integer keys arrive with text ids ("<device>:<key>"): mirror such a table into one with a text key.',
}

/** A starter config for a database: every mirrorable table, a fresh mesh id and secret. */
export function starterConfig(
  databaseFile: string,
  configFile: string,
  options: { port?: number; peers?: string[]; backend?: 'builtin' | 'ditto' } = {},
  /** The schema, read already (a Postgres database's, from its catalog). */
  read?: DatabaseSchema,
): StarterConfig {
  const postgres = isPostgresUrl(databaseFile)
  const schema = read ?? readDatabaseSchema(databaseFile, 'init', '--database')
  const tables: TableMapping[] = []
  const skipped: StarterConfig['skipped'] = []
  const keyModes: StarterConfig['keys'] = []
  for (const t of schema.tables.values()) {
    const keyColumns = t.columns.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk)
    const keys = keyColumns.map((c) => c.name)
    if (t.kind === 'virtual') {
      skipped.push({
        table: t.name,
        reason: 'is a virtual table (its content is derived or external): mirror the tables it is built from',
      })
    } else if (keys.length === 0) skipped.push({ table: t.name, reason: NO_KEY_REASON })
    else if (keyColumns.length === 1 && keyColumns[0]!.type === 'integer') {
      const choice = postgres ? POSTGRES_INTEGER_KEY : integerKeyChoice(t.rows)
      tables.push({ table: t.name, id: keys[0]!, keys: choice.keys })
      keyModes.push({ table: t.name, ...choice })
    } else tables.push({ table: t.name, id: keys.length === 1 ? keys[0]! : keys })
  }
  const base = dirname(resolve(configFile))
  const rel = (p: string) => {
    const r = relative(base, p)
    return r.startsWith('.') || r.startsWith('/') ? r : `./${r}`
  }
  const name = postgres
    ? decodeURIComponent(new URL(databaseFile).pathname.slice(1)) || 'postgres'
    : basename(databaseFile, extname(databaseFile))
  const meshDir = (suffix: string) =>
    rel(resolve(postgres ? base : dirname(resolve(databaseFile)), `${name}-${suffix}`))
  const database = postgres ? databaseFile : rel(resolve(databaseFile))
  const meshId = `${name.replace(/[^A-Za-z0-9_.:-]/g, '-')}-${randomBytes(3).toString('hex')}`
  const config: MeshmirrorConfig =
    options.backend === 'ditto'
      ? {
          database,
          mesh: {
            dir: meshDir('ditto'),
            strategy: 'shared',
            backend: 'ditto',
            ditto: { licenseToken: '$DITTO_LICENSE_TOKEN', transports: { lan: true } },
          },
          meshId,
          tables,
        }
      : {
          database,
          mesh: { dir: meshDir('mesh'), strategy: 'shared' },
          meshId,
          secret: randomBytes(18).toString('base64url'),
          listen: { host: '0.0.0.0', port: options.port ?? 4040 },
          peers: options.peers ?? [],
          tables,
        }
  return { config, skipped, keys: keyModes }
}

/** `meshmirror init --database F [--out F] [--force]`. */
export function registerInitCommand(program: Command): void {
  program
    .command('init')
    .description('write a starter config for an existing database (SQLite or Postgres), listing its tables')
    .requiredOption('--database <file|url>', 'the application’s SQLite database, or a postgres:// URL')
    .option('-o, --out <file>', 'where to write the config', 'meshmirror.config.json')
    .option('--backend <name>', 'the mesh store: builtin or ditto', 'builtin')
    .option('--port <n>', 'the port to listen on (builtin; default 4040)', integerOption)
    .option('--peer <url...>', 'peers to dial (builtin; ws://host:port)')
    .option('--force', 'replace an existing config file')
    .option('--json', 'print the result as one JSON document')
    .addHelpText('after', HELP)
    .action(
      async (opts: {
        database: string
        out: string
        backend: string
        port?: number
        peer?: string[]
        force?: boolean
        json?: boolean
      }) => {
        const output = makeOutput(opts.json === true)
        try {
          const out = resolve(opts.out)
          if (existsSync(out) && !opts.force) {
            throw configError(
              out,
              undefined,
              'already exists; pass --force to replace it, or --out to write elsewhere.',
            )
          }
          const backend = opts.backend
          if (backend !== 'builtin' && backend !== 'ditto') {
            throw configError('init', '--backend', `expected builtin or ditto, got ${JSON.stringify(backend)}`)
          }
          if (backend === 'ditto' && (opts.port !== undefined || opts.peer !== undefined)) {
            throw configError(
              'init',
              opts.port !== undefined ? '--port' : '--peer',
              'configures the builtin engine’s links; a Ditto mesh syncs through mesh.ditto.transports',
            )
          }
          if (opts.port !== undefined && (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535)) {
            throw configError('init', '--port', `expected a port 0-65535, got ${String(opts.port)}`)
          }
          // The same rule the config is read with: a peer the config would refuse is refused now.
          for (const peer of opts.peer ?? []) {
            if (!PEER_URL.test(peer))
              throw configError('init', '--peer', `expected a ws:// or wss:// URL, got ${JSON.stringify(peer)}`)
          }
          const postgres = isPostgresUrl(opts.database)
          const schema = postgres ? await readPostgresSchema(opts.database, 'init', '--database') : undefined
          const { config, skipped, keys } = starterConfig(
            postgres ? opts.database : resolve(opts.database),
            out,
            {
              backend,
              ...(opts.port === undefined ? {} : { port: opts.port }),
              ...(opts.peer ? { peers: opts.peer } : {}),
            },
            schema,
          )
          try {
            writeFileSync(out, `${JSON.stringify(config, null, 2)}\n`)
          } catch (error) {
            const why = (error as NodeJS.ErrnoException).code ?? (error as Error).message
            throw configError('init', '--out', `cannot write ${JSON.stringify(out)} (${why}).`, error)
          }
          if (output.json) output.out(JSON.stringify({ file: out, config, skipped, keys }, null, 2))
          else {
            output.out(
              `wrote ${out}: ${config.tables?.length ?? 0} tables (${config.tables?.map((t) => t.table).join(', ')})`,
            )
            for (const k of keys) output.out(`  ${k.table}: keys "${k.keys}": ${k.reason}`)
            for (const s of skipped) output.out(`  left out ${s.table}: ${s.reason}`)
            if (backend === 'ditto' && !process.env.DITTO_LICENSE_TOKEN) {
              output.out(
                '  no DITTO_LICENSE_TOKEN in the environment: the peer mirrors into the local Ditto store; sync with other devices starts once one is set',
              )
            }
            output.out(`next: review it, then \`meshmirror peer --config ${relative(process.cwd(), out) || out}\``)
          }
        } catch (error) {
          process.exitCode = reportError(output, error)
        }
      },
    )
}
