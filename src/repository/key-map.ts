import { randomBytes } from 'node:crypto'
import type Database from 'better-sqlite3'
import { ErrorCode, MeshmirrorError } from '../errors.js'
import { statementCache } from '../util/statement-cache.js'
import type { ModelInfo } from './model-definition.js'
import { quoteIdent } from './model-definition.js'
import type { Row } from './repository.js'

/**
 * `_meshmirror_keys`: for rows of `local`-keyed models that were created on
 * another device, the document id and the key this database gave the row.
 * Rows this device created need no entry: their id is this device's id and
 * their key. An entry outlives its row (a later write of the same document
 * finds its key again) until an app insert takes the key for a new row.
 */
export const KEYS_DDL = `
CREATE TABLE IF NOT EXISTS _meshmirror_keys (
  model TEXT NOT NULL,
  doc TEXT NOT NULL,
  key INTEGER NOT NULL,
  PRIMARY KEY (model, doc)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS _meshmirror_keys_local ON _meshmirror_keys (model, key);
`

const DEVICE_RE = /^[a-z0-9]{4,32}$/
const KEY_RE = /^-?[0-9]{1,19}$/

/** This database's device id (created on first use, kept in `_meshmirror_meta`). Runs inside a write transaction. */
export function deviceIdOf(db: Database.Database): string {
  const row = db.prepare("SELECT value FROM _meshmirror_meta WHERE key = 'device'").pluck().get() as string | undefined
  if (row !== undefined && DEVICE_RE.test(row)) return row
  // 10 base-36 characters: about 3.6e15 values, so two devices of one mesh never draw the same.
  const id = (randomBytes(8).readBigUInt64BE() % 36n ** 10n).toString(36).padStart(10, '0')
  db.prepare(
    "INSERT INTO _meshmirror_meta (key, value) VALUES ('device', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
  ).run(id)
  return id
}

/** The document id of a `local`-keyed row: `<device>:<key>`, e.g. `k3f9a2qz0m:57`. */
export function meshKeyId(device: string, key: number | bigint | string): string {
  return `${device}:${key}`
}

/** The device and key a `local` document id names, or undefined when it is not one. */
export function parseMeshKeyId(id: string): { device: string; key: bigint } | undefined {
  const colon = id.indexOf(':')
  if (colon < 4 || colon > 32) return undefined
  const device = id.slice(0, colon)
  const digits = id.slice(colon + 1)
  if (!DEVICE_RE.test(device) || !KEY_RE.test(digits)) return undefined
  const key = BigInt(digits)
  if (key > 9223372036854775807n || key < -9223372036854775808n) return undefined
  return { device, key }
}

/** A key as better-sqlite3 binds it, and as rows read without safe integers hold it. */
function asNumber(key: bigint): number | bigint {
  return key >= BigInt(Number.MIN_SAFE_INTEGER) && key <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(key) : key
}

/** A key column's stored value as a bigint, or undefined when it is not an integer. */
function storedKey(v: unknown): bigint | undefined {
  if (typeof v === 'bigint') return v
  if (typeof v === 'number' && Number.isInteger(v)) return BigInt(v)
  if (typeof v === 'object' && v !== null && typeof (v as { $int?: unknown }).$int === 'string') {
    return BigInt((v as { $int: string }).$int)
  }
  if (typeof v === 'string' && /^-?[0-9]{1,19}$/.test(v)) return BigInt(v)
  return undefined
}

/** A document that names a `local` row with something that is not a `local` id. */
export function notALocalId(model: string, column: string, value: unknown): MeshmirrorError {
  return new MeshmirrorError(
    ErrorCode.DOCUMENT_REJECTED,
    `${model}.${column} is ${JSON.stringify(value)}, not a row id of a table with keys "local" (<device>:<key>, e.g. "k3f9a2qz0m:57").`,
    { details: { model, column } },
  )
}

/**
 * Translates between the ids the mesh carries and the keys this database
 * holds, for the columns of `local`-keyed models (their own key, and foreign
 * keys referencing one). One instance per connection; lookups are one probe
 * of `_meshmirror_keys`' primary key or unique index.
 */
export class KeyMap {
  private readonly stmt: (sql: string) => Database.Statement
  private sequence = false
  /**
   * Within one write transaction (see {@link batch}): keys found or claimed,
   * by model and document id, and the next key to allocate per model.
   */
  private known: Map<string, Map<string, bigint>> | undefined
  private next: Map<string, bigint> | undefined

  constructor(
    db: Database.Database,
    /** This database's device id. */
    readonly device: string,
  ) {
    this.stmt = statementCache(db)
  }

  /** The document id of `key`, a row of the `local` model `model`. */
  meshId(model: string, key: bigint): string {
    const doc = this.stmt('SELECT doc FROM _meshmirror_keys WHERE model = ? AND key = ?')
      .pluck()
      .get(model, asNumber(key)) as string | undefined
    return doc ?? meshKeyId(this.device, key)
  }

  /**
   * Runs `fn` (one write transaction) remembering the keys it finds and
   * allocates, so that a row's key is looked up once per batch and new keys
   * are counted on from one lookup. Forgotten when `fn` ends, committed or not.
   */
  batch<T>(fn: () => T): T {
    this.known = new Map()
    this.next = new Map()
    try {
      return fn()
    } finally {
      this.known = undefined
      this.next = undefined
    }
  }

  private remember(model: string, id: string, key: bigint): void {
    if (!this.known) return
    let m = this.known.get(model)
    if (!m) {
      m = new Map()
      this.known.set(model, m)
    }
    m.set(id, key)
  }

  /** The key this database holds the document `id` under, or undefined when it holds no such row. */
  localKey(model: string, id: string): bigint | undefined {
    const cached = this.known?.get(model)?.get(id)
    if (cached !== undefined) return cached
    const found = this.lookup(model, id)
    if (found !== undefined) this.remember(model, id, found)
    return found
  }

  private lookup(model: string, id: string): bigint | undefined {
    const mapped = this.stmt('SELECT key FROM _meshmirror_keys WHERE model = ? AND doc = ?')
      .pluck()
      .safeIntegers(true)
      .get(model, id) as bigint | undefined
    if (mapped !== undefined) return mapped
    const parsed = parseMeshKeyId(id)
    if (!parsed || parsed.device !== this.device) return undefined
    // A row this device created, unless its key now holds a row received from another device.
    const taken = this.stmt('SELECT 1 FROM _meshmirror_keys WHERE model = ? AND key = ?')
      .pluck()
      .get(model, asNumber(parsed.key))
    return taken === undefined ? parsed.key : undefined
  }

  /**
   * The position of `id` in key order (for paging): its key, even when that
   * key was since taken by another row; undefined when unknown.
   */
  position(model: string, id: string): bigint | undefined {
    const mapped = this.localKey(model, id)
    if (mapped !== undefined) return mapped
    const parsed = parseMeshKeyId(id)
    return parsed?.device === this.device ? parsed.key : undefined
  }

  /**
   * The key of the document `id` of `model`, allocating one (and recording
   * the mapping) when this database does not hold it yet. A new key is past
   * every key in the table, in `sqlite_sequence` (AUTOINCREMENT) and in the
   * mapping, so it never reuses a key a row or a pending mapping holds.
   * Writer connection, inside the batch's transaction.
   */
  claim(m: ModelInfo, id: string): bigint {
    const known = this.localKey(m.name, id)
    if (known !== undefined) return known
    const parsed = parseMeshKeyId(id)
    if (!parsed) throw notALocalId(m.name, m.keys[0]!, id)
    const pending = this.next?.get(m.name)
    if (pending !== undefined) return this.allocate(m, id, pending)
    return this.allocate(m, id, this.nextKey(m))
  }

  /** The first key past every key the table, the mapping and `sqlite_sequence` hold. */
  private nextKey(m: ModelInfo): bigint {
    const column = quoteIdent(m.keys[0]!)
    // sqlite_sequence exists once any table of the database is AUTOINCREMENT.
    this.sequence ||= this.stmt("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").get() !== undefined
    return this.stmt(
      `SELECT max(coalesce((SELECT max(${column}) FROM ${quoteIdent(m.table)}), 0),
                  coalesce((SELECT max(key) FROM _meshmirror_keys WHERE model = ?), 0)${
                    this.sequence ? `, coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?), 0)` : ''
                  }) + 1`,
    )
      .pluck()
      .safeIntegers(true)
      .get(...(this.sequence ? [m.name, m.table] : [m.name])) as bigint
  }

  private allocate(m: ModelInfo, id: string, key: bigint): bigint {
    // Past every mapped key, and the document has no entry: a plain insert.
    this.stmt('INSERT INTO _meshmirror_keys (model, doc, key) VALUES (?, ?, ?)').run(m.name, id, asNumber(key))
    this.next?.set(m.name, key + 1n)
    this.remember(m.name, id, key)
    return key
  }

  /**
   * {@link claim} for many documents of one model at once, in a few
   * statements whatever their number: the mapped ones found with one query,
   * this device's own checked with one more, the new ones given consecutive
   * keys and recorded with one insert. Ids that are not `local` ids are left
   * out (their rows are refused when written). Inside {@link batch}.
   */
  claimAll(m: ModelInfo, ids: readonly string[]): void {
    const known = this.known
    if (!known || ids.length === 0) {
      for (const id of ids) if (parseMeshKeyId(id)) this.claim(m, id)
      return
    }
    let mine = known.get(m.name)
    if (!mine) {
      mine = new Map()
      known.set(m.name, mine)
    }
    const wanted = ids.filter((id) => !mine.has(id))
    if (wanted.length === 0) return
    const found = this.stmt(
      'SELECT doc, key FROM _meshmirror_keys WHERE model = ? AND doc IN (SELECT value FROM json_each(?))',
    )
      .raw()
      .safeIntegers(true)
      .all(m.name, JSON.stringify(wanted)) as [string, bigint][]
    for (const [doc, key] of found) mine.set(doc, key)
    const own: [string, bigint][] = []
    const others: string[] = []
    for (const id of wanted) {
      if (mine.has(id)) continue
      const parsed = parseMeshKeyId(id)
      if (!parsed) continue
      if (parsed.device === this.device) own.push([id, parsed.key])
      else others.push(id)
    }
    if (own.length > 0) {
      // A row this device created keeps its key, unless a row received from elsewhere holds it now.
      const taken = new Set(
        (
          this.stmt('SELECT key FROM _meshmirror_keys WHERE model = ? AND key IN (SELECT value FROM json_each(?))')
            .pluck()
            .safeIntegers(true)
            .all(m.name, `[${own.map(([, k]) => k.toString()).join(',')}]`) as bigint[]
        ).map(String),
      )
      for (const [id, key] of own) {
        if (taken.has(String(key))) others.push(id)
        else mine.set(id, key)
      }
    }
    if (others.length === 0) return
    let next = this.next?.get(m.name) ?? this.nextKey(m)
    const entries: string[] = []
    for (const id of new Set(others)) {
      mine.set(id, next)
      entries.push(`[${JSON.stringify(id)},${next}]`)
      next++
    }
    this.next?.set(m.name, next)
    this.stmt(
      "INSERT INTO _meshmirror_keys (model, doc, key) SELECT ?, json_extract(value, '$[0]'), json_extract(value, '$[1]') FROM json_each(?)",
    ).run(m.name, `[${entries.join(',')}]`)
  }

  /** The row as the mesh sees it: keys of `local` models replaced by their document ids. */
  toMesh(m: ModelInfo, row: Row): Row {
    const out: Row = { ...row }
    for (const [column, ref] of m.localRefs) {
      const key = storedKey(row[column])
      if (key !== undefined) out[column] = this.meshId(ref, key)
    }
    return out
  }

  /**
   * The row as this database stores it: document ids replaced by local keys.
   * The model's own key must have been claimed; a referenced row that is not
   * here throws (the caller parks such rows before writing).
   */
  toStorage(m: ModelInfo, row: Row): Row {
    const out: Row = { ...row }
    for (const [column, ref] of m.localRefs) {
      const v = row[column]
      if (v === null || v === undefined) continue
      if (typeof v !== 'string') throw notALocalId(m.name, column, v)
      const key = this.localKey(ref, v)
      if (key === undefined) {
        throw new MeshmirrorError(
          ErrorCode.DOCUMENT_REJECTED,
          `${m.name}.${column} references ${ref} ${v}, which is not in this database.`,
          { details: { model: m.name, column, id: v } },
        )
      }
      const n = asNumber(key)
      out[column] = typeof n === 'bigint' ? { $int: n.toString() } : n
    }
    return out
  }

  /**
   * The key-column values a document id stands for, in storage form, or
   * undefined when this database holds no such row.
   */
  storageKey(m: ModelInfo, values: readonly (string | number)[]): (string | number | bigint)[] | undefined {
    const out: (string | number | bigint)[] = []
    for (let i = 0; i < m.keys.length; i++) {
      const v = values[i]!
      const ref = m.localRefs.get(m.keys[i]!)
      if (ref === undefined) {
        out.push(v)
        continue
      }
      const key = typeof v === 'string' ? this.localKey(ref, v) : undefined
      if (key === undefined) return undefined
      out.push(asNumber(key))
    }
    return out
  }
}
