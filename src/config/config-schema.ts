import { z } from 'zod'

const name = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected a name of letters, digits and _')
const scalar = z.union([z.string(), z.number(), z.boolean(), z.null()])
const nonNegative = z.number().min(0)
const positiveInt = z.int().min(1)
/**
 * A file or directory path: the system refuses a NUL character in one, and
 * would write a lone surrogate (half a UTF-16 pair) as U+FFFD, another name
 * than the one given; the config refuses both first.
 */
const path = z
  .string()
  .min(1)
  .refine((p) => !p.includes('\0'), 'a path cannot contain a NUL character')
  .refine(
    (p) => Buffer.from(p, 'utf8').toString('utf8') === p,
    'a path cannot contain a lone surrogate (invalid Unicode)',
  )

/** A table mirrored without code: its adapter is derived from the table's own schema. */
export const tableMappingSchema = z.strictObject({
  /** The table in the database. */
  table: z.string().min(1),
  /** The mesh collection. Default: the table name. */
  collection: name.optional(),
  /** The primary-key column, or columns in key order for a composite key. Default: the table's primary key (checked when given). */
  id: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
  /** Column values this device mirrors: `{ "branch_id": 1 }` sends and receives only branch 1's rows. */
  scope: z.record(z.string(), scalar).optional(),
  direction: z.enum(['bidirectional', 'sendOnly', 'receiveOnly']).optional(),
  /**
   * How the primary key identifies a row across devices: `global` (the same
   * row on every device: UUIDs, natural keys, rows one device creates) or
   * `local` (each device allocates its own integer keys; the mesh names a
   * row by its creating device). Required for a table mirrored both ways
   * whose key is a single INTEGER column; text keys default to `global`.
   */
  keys: z.enum(['global', 'local']).optional(),
  /** Numeric columns that merge as counters (stock levels): concurrent changes add up. */
  counters: z.array(z.string().min(1)).optional(),
  /** Columns that stay local, never mirrored. */
  exclude: z.array(z.string().min(1)).optional(),
  /**
   * Also keep every concurrent update whose value lost (last writer wins),
   * as a conflict `meshmirror conflicts` lists; create/create collisions are
   * kept for every table. Default false. Set it alike on every device.
   */
  recordConflicts: z.boolean().optional(),
})

/** Generated (or hand-written) adapters in a module. */
export const adapterModuleSchema = z.strictObject({
  /** Path of a module (`.js`, `.mjs`, or `.ts` when run through tsx) exporting the adapter list. */
  module: path,
  /** Export holding the adapters. Default `syncAdapters`. */
  adapters: z.string().min(1).optional(),
  /** Export holding the repository models. Default `syncModels`. */
  models: z.string().min(1).optional(),
})

/** The bridge's settings (see the sync bridge documentation), including the seed's knobs. */
export const settingsSchema = z.strictObject({
  batchSize: positiveInt.optional(),
  maxBatchDelayMs: nonNegative.optional(),
  delayBetweenBatches: nonNegative.optional(),
  transactionPerRow: z.boolean().optional(),
  highWaterMark: positiveInt.optional(),
  drainBatchSize: positiveInt.optional(),
  catchUpPageSize: positiveInt.optional(),
  seedBatchSize: positiveInt.optional(),
  skipInitialFetch: z.boolean().optional(),
  startupDelayMs: nonNegative.optional(),
  closeTimeoutMs: nonNegative.optional(),
  pollIntervalMs: nonNegative.optional(),
  verifyIntervalMs: nonNegative.optional(),
  targetBatchMs: nonNegative.optional(),
})

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** The Ditto SDK as the mesh (`mesh.backend: "ditto"`): the options of `openDittoMesh` a config can set. */
export const dittoMeshSchema = z.strictObject({
  /** Ditto database id (a UUID); peers sync only within one. Default: Ditto's default id. */
  databaseId: z.string().regex(UUID, 'expected a UUID').optional(),
  /**
   * Offline licence token; `$ENV_NAME` reads it from the environment.
   * Default: env `DITTO_LICENSE_TOKEN`. Without one the store works locally
   * and sync does not start.
   */
  licenseToken: z.string().min(1).optional(),
  /** Shared key (a base64 private key) that authenticates and encrypts small-peer connections; `$ENV_NAME` reads it. */
  sharedKey: z.string().min(1).optional(),
  transports: z
    .strictObject({
      lan: z.boolean().optional(),
      bluetooth: z.boolean().optional(),
      tcpListen: z
        .strictObject({ interfaceIP: z.string().min(1).optional(), port: z.int().min(0).max(65535) })
        .optional(),
      tcpConnect: z.array(z.string().regex(/^\S+:\d+$/, 'expected host:port')).optional(),
      websocketConnect: z.array(z.string().regex(/^wss?:\/\/\S+$/, 'expected a ws:// or wss:// URL')).optional(),
    })
    .optional(),
  /** Start sync when a licence token is present. Default true. */
  sync: z.boolean().optional(),
  /** `delete` (default): removals sync as tombstones. `evict`: local removal only. */
  removeWith: z.enum(['delete', 'evict']).optional(),
  /** Ditto's console log level. Default `off`. */
  logLevel: z.enum(['off', 'Error', 'Warning', 'Info', 'Debug', 'Verbose']).optional(),
  /** Ditto's debug log files in the directory. Default true (Ditto's default). */
  diskLogs: z.boolean().optional(),
})

const credential = z.string().min(1)

/**
 * The hub tier (see docs/hub.md): a NATS JetStream server or cluster every
 * shop's tills sync through, besides (or instead of) their LAN peers.
 */
export const hubSchema = z
  .strictObject({
    /** `nats://host:port` (or `tls://`, or `host:port`); several for a cluster. */
    servers: z.union([
      z.string().regex(/^((nats|tls):\/\/)?[^\s/]+(:\d{1,5})?$/, 'expected nats://host:port'),
      z
        .array(z.string().regex(/^((nats|tls):\/\/)?[^\s/]+(:\d{1,5})?$/, 'expected nats://host:port'))
        .min(1, 'expected at least one server'),
    ]),
    /** User name (with `password`). */
    user: credential.optional(),
    /** `$ENV_NAME` reads it from the environment. */
    password: credential.optional(),
    /** A token; `$ENV_NAME` reads it from the environment. */
    token: credential.optional(),
    /** An nkey seed (`SU…`); `$ENV_NAME` reads it from the environment. */
    nkeySeed: credential.optional(),
    /** A `.creds` file (operator mode: a user JWT and its seed). */
    credsFile: path.optional(),
    /** `true` for TLS with the system's authorities, or PEM files. */
    tls: z
      .union([
        z.boolean(),
        z.strictObject({ caFile: path.optional(), certFile: path.optional(), keyFile: path.optional() }),
      ])
      .optional(),
    /** The key-value bucket. Default `meshmirror`. */
    bucket: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected 1-64 characters from [A-Za-z0-9_-]')
      .optional(),
    /** This mesh's subjects on the hub (`chain.shop-a`): what the hub's permissions confine its credentials to. */
    prefix: z
      .string()
      .max(128)
      .regex(
        /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/,
        'expected subject tokens of [A-Za-z0-9_-] separated by dots (e.g. "chain.shop-a")',
      ),
    /** Copies of the bucket in a JetStream cluster when this device creates it. Default 1. */
    replicas: z.int().min(1).max(5).optional(),
  })
  .superRefine((h, ctx) => {
    const kinds = (['token', 'user', 'nkeySeed', 'credsFile'] as const).filter((k) => h[k] !== undefined)
    if (kinds.length > 1) {
      ctx.addIssue({
        code: 'custom',
        path: [kinds[1]!],
        message: `give one kind of credentials, not ${kinds.map((k) => JSON.stringify(k)).join(' and ')}`,
      })
    }
    if (h.password !== undefined && h.user === undefined) {
      ctx.addIssue({ code: 'custom', path: ['password'], message: 'needs "user"' })
    }
    if (h.nkeySeed !== undefined && !/^S[A-Z2-7]{57}$/.test(h.nkeySeed)) {
      ctx.addIssue({
        code: 'custom',
        path: ['nkeySeed'],
        message: 'expected an nkey seed (58 characters starting with S)',
      })
    }
    if (typeof h.tls === 'object' && (h.tls.certFile === undefined) !== (h.tls.keyFile === undefined)) {
      ctx.addIssue({ code: 'custom', path: ['tls'], message: 'certFile and keyFile go together' })
    }
  })

/** Keys that configure the builtin engine's replication, which a Ditto mesh does not use. */
const BUILTIN_ONLY = [
  'secret',
  'previousSecrets',
  'insecure',
  'listen',
  'peers',
  'discovery',
  'reconnect',
  'limits',
  'hub',
] as const

export const configSchema = z
  .strictObject({
    /**
     * The application's database: a SQLite file, or a PostgreSQL database as
     * a `postgres://user@host:5432/db` URL (`$ENV_NAME` reads either from the
     * environment, keeping a password out of the file). It must exist:
     * meshmirror mirrors it, never creates it.
     */
    database: path,
    /** Settings of a Postgres `database` (see docs/postgres.md). */
    postgres: z
      .strictObject({
        /** The schema holding the app's tables. Default `public`. */
        schema: z
          .string()
          .regex(/^[A-Za-z_][A-Za-z0-9_]{0,47}$/)
          .optional(),
        /** The schema meshmirror keeps its tables and trigger functions in. Default `meshmirror`. */
        syncSchema: z
          .string()
          .regex(/^[A-Za-z_][A-Za-z0-9_]{0,47}$/)
          .optional(),
        /** Connections in the pool. Default 4. */
        poolSize: z.int().min(2).optional(),
        /** How long a write waits for a lock an app transaction holds before it steps back and retries. Default 500 ms. */
        lockTimeoutMs: positiveInt.optional(),
      })
      .optional(),
    mesh: z.strictObject({
      /** The mesh persistence directory (created when missing). */
      dir: path,
      /** The mesh store: `builtin` (default; replicated by meshmirror) or `ditto` (the Ditto SDK, synced by Ditto). */
      backend: z.enum(['builtin', 'ditto']).optional(),
      /** Options of the Ditto mesh, with `backend: "ditto"`. */
      ditto: dittoMeshSchema.optional(),
      strategy: z.enum(['shared', 'unique']).optional(),
      /** When another process holds the directory. Default `fail`. */
      onLocked: z.enum(['fail', 'wait']).optional(),
      lockTimeoutMs: nonNegative.optional(),
    }),
    /** Which mesh this is: peers of another mesh are refused. */
    meshId: z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'expected 1-128 characters from [A-Za-z0-9_.:-]'),
    /**
     * Shared secret of the mesh (at least 8 characters): it keys the
     * encryption of every link and proves membership. `$ENV_NAME` reads it
     * from the environment. Required with the builtin engine; a Ditto mesh
     * authenticates with Ditto's own identity instead.
     */
    secret: z.string().min(8, 'expected a string of at least 8 characters').optional(),
    /**
     * Secrets still accepted while the mesh moves to a new `secret` (at most
     * 3; `$ENV_NAME` works here too). Remove them once every device has the
     * new secret.
     */
    previousSecrets: z.array(z.string().min(8, 'expected a string of at least 8 characters')).max(3).optional(),
    /**
     * Plain, unencrypted links: anyone on the network can read and alter
     * them. Default false. Every device of a mesh must agree.
     */
    insecure: z.boolean().optional(),
    listen: z.strictObject({ host: z.string().min(1), port: z.int().min(0).max(65535) }).optional(),
    /** Peers to dial: `ws://host:port` (encrypted unless `insecure`), or `wss://host:port` for a listener with certificates. */
    peers: z
      .array(
        z
          .string()
          .regex(
            /^wss?:\/\/\S+$/,
            'expected a ws:// or wss:// URL: ws://host:port (encrypted with the mesh secret unless "insecure"), or wss://host:port for a listener with certificates',
          ),
      )
      .optional(),
    discovery: z.boolean().optional(),
    /** What one peer may make this one do (see the replication documentation, "Hostile input"). */
    limits: z
      .strictObject({
        maxDocumentBytes: positiveInt.optional(),
        maxFieldsPerDocument: positiveInt.optional(),
        maxCollections: positiveInt.optional(),
        maxChangesPerSecond: positiveInt.optional(),
        burstChanges: positiveInt.optional(),
      })
      .optional(),
    /**
     * Sync through a NATS JetStream hub too (or only: without `listen`,
     * `peers` and `discovery`). Tables with a `scope` receive only their
     * scope from the hub. See docs/hub.md.
     */
    hub: hubSchema.optional(),
    /** Reconnect backoff bounds towards peers. Default 100 ms to 10 s. */
    reconnect: z.strictObject({ minMs: nonNegative.optional(), maxMs: nonNegative.optional() }).optional(),
    tables: z.array(tableMappingSchema).optional(),
    adapters: adapterModuleSchema.optional(),
    /** Context values generated adapters build their scope from (e.g. `{ "branchId": 1 }`). */
    context: z.record(z.string(), scalar).optional(),
    settings: settingsSchema.optional(),
    /**
     * Find the app's writes through file notifications on the database's
     * directory (default), or by polling alone (`false`; every 25 ms).
     */
    watchDatabase: z.boolean().optional(),
    /**
     * Serve the dashboard, a read-only web page of this peer, on `port`
     * (0: a free one). `host` defaults to 127.0.0.1; any other address
     * requires a token: `token` (at least 16 characters; `$ENV_NAME` reads it
     * from the environment), else env `MESHMIRROR_DASHBOARD_TOKEN`, else one
     * is generated and printed.
     */
    dashboard: z
      .strictObject({
        host: z.string().min(1).optional(),
        port: z.int().min(0).max(65535),
        token: z.string().min(1).optional(),
      })
      .optional(),
    /**
     * How often the status snapshot is taken. It is written to the mesh
     * directory (and emitted) when what it shows changed, and at least every
     * ten intervals. Default 1,000 ms.
     */
    statusIntervalMs: z.int().min(50).optional(),
  })
  .refine((c) => (c.tables?.length ?? 0) > 0 || c.adapters !== undefined, {
    message: 'expected "tables" (a list of table mappings) or "adapters" (a module path): nothing to mirror',
    path: ['tables'],
  })
  .refine((c) => new Set([c.secret, ...(c.previousSecrets ?? [])]).size === (c.previousSecrets?.length ?? 0) + 1, {
    message: 'expected secrets different from "secret" and from each other',
    path: ['previousSecrets'],
  })
  .superRefine((c, ctx) => {
    if (c.postgres !== undefined && !/^postgres(ql)?:\/\//i.test(c.database)) {
      ctx.addIssue({ code: 'custom', path: ['postgres'], message: 'applies only to a postgres:// database' })
    }
    const ditto = c.mesh.backend === 'ditto'
    if (!ditto && c.secret === undefined) {
      ctx.addIssue({ code: 'custom', path: ['secret'], message: 'missing: expected string' })
    }
    if (!ditto && c.mesh.ditto !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['mesh', 'ditto'], message: 'applies only with "backend": "ditto"' })
    }
    if (!ditto) return
    c.tables?.forEach((t, i) => {
      if (t.recordConflicts !== true) return
      ctx.addIssue({
        code: 'custom',
        path: ['tables', i, 'recordConflicts'],
        message: 'not available with "backend": "ditto": Ditto merges without keeping the versions that lost',
      })
    })
    for (const key of BUILTIN_ONLY) {
      if (c[key] === undefined) continue
      ctx.addIssue({
        code: 'custom',
        path: [key],
        message:
          'not used with "backend": "ditto": Ditto syncs through its own transports and identity (set mesh.ditto.transports, mesh.ditto.sharedKey)',
      })
    }
  })

/** A meshmirror config file, as written. */
export type MeshmirrorConfig = z.infer<typeof configSchema>
export type TableMapping = z.infer<typeof tableMappingSchema>
export type HubConfig = z.infer<typeof hubSchema>
