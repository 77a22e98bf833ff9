import type Database from 'better-sqlite3'
import { ErrorCode, StorageError } from '../errors.js'
import { KEYS_DDL } from './key-map.js'
import { type ModelInfo, quoteIdent } from './model-definition.js'
import { PARKED_DDL } from './parked-store.js'
import { idExpression } from './row-key.js'

/** Version of the tables below; stored in `_meshmirror_meta`. */
export const SYNC_SCHEMA_VERSION = 1

/**
 * Tables meshmirror keeps in the application's database.
 *
 * - `_meshmirror_outbox`: writes captured by triggers, drained into the mesh.
 *   An update or a delete also records the row as it was before (JSON). For
 *   an update it is the base that tells which fields the app changed, so
 *   only those are sent; for any change it is the row as of the change
 *   before, so a drain that sends the changes up to some entry sends the
 *   rows as they were then, not with later changes it does not acknowledge.
 * - `_meshmirror_applying`: the loop-prevention flag. The bridge inserts its
 *   one row at the start of every transaction that applies mesh changes and
 *   deletes it before COMMIT, so the row is never committed. Triggers skip
 *   the outbox while they can see the row, which only that transaction can:
 *   SQLite runs one write transaction at a time and never shows uncommitted
 *   rows to other connections. Writes from every other connection or process
 *   are captured; the bridge's own remote applies are not. Unlike a TEMP
 *   table or an application-defined function, a plain table works from any
 *   connection, including ones that know nothing about meshmirror.
 * - `_meshmirror_sync_state`: per document, the content last exchanged with
 *   the mesh (hash and origin; the document itself for repositories whose
 *   writes are not captured, where it is the base for sending changed fields).
 * - `_meshmirror_checkpoints`: named positions (mesh cursors, seeding marks).
 * - `_meshmirror_parked`: received documents not in the database, with why
 *   (see `parked-store.ts`).
 * - `_meshmirror_keys`: the keys this database gave rows of `local`-keyed
 *   models received from other devices (see `key-map.ts`).
 */
const DDL = `
CREATE TABLE IF NOT EXISTS _meshmirror_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _meshmirror_outbox (
  seq INTEGER PRIMARY KEY,
  model TEXT NOT NULL,
  row_id TEXT NOT NULL,
  op TEXT NOT NULL,
  at INTEGER NOT NULL,
  old TEXT
);
CREATE INDEX IF NOT EXISTS _meshmirror_outbox_row ON _meshmirror_outbox (model, row_id);
CREATE TABLE IF NOT EXISTS _meshmirror_applying (flag INTEGER PRIMARY KEY CHECK (flag = 1));
CREATE TABLE IF NOT EXISTS _meshmirror_sync_state (
  model TEXT NOT NULL,
  id TEXT NOT NULL,
  hash TEXT NOT NULL,
  origin TEXT NOT NULL,
  doc TEXT,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (model, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS _meshmirror_checkpoints (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL,
  updated_at INTEGER NOT NULL
) WITHOUT ROWID;
`

/** Creates meshmirror's tables if needed and checks their version. Runs in a transaction. */
export function installSyncTables(db: Database.Database, file: string): void {
  db.exec(DDL)
  db.exec(PARKED_DDL)
  db.exec(KEYS_DDL)
  const row = db.prepare("SELECT value FROM _meshmirror_meta WHERE key = 'schema_version'").get() as
    | { value: string }
    | undefined
  if (row === undefined) {
    db.prepare("INSERT INTO _meshmirror_meta (key, value) VALUES ('schema_version', ?)").run(
      String(SYNC_SCHEMA_VERSION),
    )
  } else if (Number(row.value) !== SYNC_SCHEMA_VERSION) {
    throw new StorageError(
      ErrorCode.DATABASE_UNUSABLE,
      `${file} holds meshmirror sync tables of version ${row.value}; this meshmirror uses version ${SYNC_SCHEMA_VERSION}. Use a matching meshmirror version.`,
      { details: { file, version: row.value } },
    )
  }
  const outboxColumns = db.prepare('PRAGMA table_info(_meshmirror_outbox)').all() as { name: string }[]
  if (!outboxColumns.some((c) => c.name === 'old')) db.exec('ALTER TABLE _meshmirror_outbox ADD COLUMN old TEXT')
  // The flag is never committed; clear anything an older build might have left.
  db.exec('DELETE FROM _meshmirror_applying')
}

// Milliseconds since the epoch, in SQL every SQLite version understands.
const NOW_MS = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)"
const NOT_APPLYING = 'NOT EXISTS (SELECT 1 FROM _meshmirror_applying)'

function triggerNames(model: ModelInfo): { insert: string; update: string; delete: string } {
  return {
    insert: `_meshmirror_${model.name}_insert`,
    update: `_meshmirror_${model.name}_update`,
    delete: `_meshmirror_${model.name}_delete`,
  }
}

/**
 * The row before an update as a JSON object, exact where JSON is not: a BLOB
 * as `{"$hex": …}`, an INTEGER beyond ±(2^53 − 1) (or any INTEGER in a column
 * without a type, where a plain number would read as REAL) as `{"$int": …}`.
 * `decodeRow` turns these into the values a fresh read gives, so an unchanged
 * field compares equal and a changed one is sent.
 */
function oldRowJson(model: ModelInfo): string {
  const pairs = [...model.columns].map(([c, type]) => {
    const ref = `OLD.${quoteIdent(c)}`
    const int = `json_object('$int', CAST(${ref} AS TEXT))`
    const integer =
      type === 'any'
        ? int
        : `CASE WHEN ${ref} BETWEEN -9007199254740991 AND 9007199254740991 THEN ${ref} ELSE ${int} END`
    return `'${c.replaceAll("'", "''")}', CASE typeof(${ref}) WHEN 'blob' THEN json_object('$hex', hex(${ref})) WHEN 'integer' THEN ${integer} ELSE ${ref} END`
  })
  return `json_object(${pairs.join(', ')})`
}

/** The CREATE TRIGGER statements capturing a model's writes (`device`: this database's, for `local` keys). */
export function captureTriggers(model: ModelInfo, device: string): Record<string, string> {
  const t = quoteIdent(model.table)
  const names = triggerNames(model)
  const oldId = idExpression(model, 'OLD', device)
  const keyChanged = model.keys.map((k) => `OLD.${quoteIdent(k)} IS NOT NEW.${quoteIdent(k)}`).join(' OR ')
  const keySame = model.keys.map((k) => `OLD.${quoteIdent(k)} IS NEW.${quoteIdent(k)}`).join(' AND ')
  // A row the app inserts, or moves to a new key, is this device's own.
  const created = idExpression(model, 'NEW', device, true)
  const updated =
    model.localRefs.get(model.keys[0]!) === model.name
      ? `CASE WHEN ${keySame} THEN ${idExpression(model, 'NEW', device)} ELSE ${created} END`
      : idExpression(model, 'NEW', device)
  const oldRow = oldRowJson(model)
  return {
    [names.insert]: `CREATE TRIGGER ${quoteIdent(names.insert)} AFTER INSERT ON ${t} WHEN ${NOT_APPLYING} BEGIN INSERT INTO _meshmirror_outbox (model, row_id, op, at) VALUES ('${model.name}', ${created}, 'upsert', ${NOW_MS}); END`,
    // A changed primary key is a removal of the old id and a write of the new one (which has no earlier state).
    [names.update]: `CREATE TRIGGER ${quoteIdent(names.update)} AFTER UPDATE ON ${t} WHEN ${NOT_APPLYING} BEGIN INSERT INTO _meshmirror_outbox (model, row_id, op, at, old) SELECT '${model.name}', ${oldId}, 'delete', ${NOW_MS}, ${oldRow} WHERE ${keyChanged}; INSERT INTO _meshmirror_outbox (model, row_id, op, at, old) VALUES ('${model.name}', ${updated}, 'upsert', ${NOW_MS}, CASE WHEN ${keySame} THEN ${oldRow} END); END`,
    [names.delete]: `CREATE TRIGGER ${quoteIdent(names.delete)} AFTER DELETE ON ${t} WHEN ${NOT_APPLYING} BEGIN INSERT INTO _meshmirror_outbox (model, row_id, op, at, old) VALUES ('${model.name}', ${oldId}, 'delete', ${NOW_MS}, ${oldRow}); END`,
  }
}

/**
 * The triggers of a `local`-keyed model that keep `_meshmirror_keys` true
 * whether or not its writes are captured: a key the app gives a new row (an
 * insert, or a row moved to another key) is this device's row from then on,
 * so a mapping left there by a row received earlier and since deleted goes.
 */
function keyTriggers(model: ModelInfo): Record<string, string> {
  const t = quoteIdent(model.table)
  const k = quoteIdent(model.keys[0]!)
  const release = `DELETE FROM _meshmirror_keys WHERE model = '${model.name}' AND key = NEW.${k};`
  const insert = `_meshmirror_${model.name}_key_insert`
  const update = `_meshmirror_${model.name}_key_update`
  return {
    [insert]: `CREATE TRIGGER ${quoteIdent(insert)} AFTER INSERT ON ${t} WHEN ${NOT_APPLYING} BEGIN ${release} END`,
    [update]: `CREATE TRIGGER ${quoteIdent(update)} AFTER UPDATE OF ${k} ON ${t} WHEN ${NOT_APPLYING} AND OLD.${k} IS NOT NEW.${k} BEGIN ${release} END`,
  }
}

/** Installs a `local` model's key triggers, or removes them from a `global` one. */
export function setKeyTriggers(db: Database.Database, model: ModelInfo): void {
  const wanted = keyTriggers({ ...model, keys: [model.keys[0]!] })
  replaceTriggers(db, wanted, model.keyMode === 'local')
}

/** Creates (or drops) triggers, replacing one only when its SQL differs. */
function replaceTriggers(db: Database.Database, wanted: Record<string, string>, enabled: boolean): void {
  const names = Object.keys(wanted)
  const existing = new Map(
    (
      db
        .prepare(
          `SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name IN (${names.map(() => '?').join(', ')})`,
        )
        .all(...names) as { name: string; sql: string }[]
    ).map((r) => [r.name, r.sql]),
  )
  for (const [name, sql] of Object.entries(wanted)) {
    const current = existing.get(name)
    if (enabled && current === sql) continue
    if (current !== undefined) db.exec(`DROP TRIGGER ${quoteIdent(name)}`)
    if (enabled) db.exec(sql)
  }
}

/**
 * Installs (or removes) a model's capture triggers. Existing triggers are
 * replaced only when their SQL differs, so reopening does not touch the schema.
 */
export function setCapture(db: Database.Database, model: ModelInfo, enabled: boolean, device: string): void {
  replaceTriggers(db, captureTriggers(model, device), enabled)
  if (!enabled) db.prepare('DELETE FROM _meshmirror_outbox WHERE model = ?').run(model.name)
}

/** True when every capture trigger of the model is installed. */
export function isCapturing(db: Database.Database, model: ModelInfo): boolean {
  const n = db
    .prepare("SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN (?, ?, ?)")
    .pluck()
    .get(...Object.values(triggerNames(model))) as number
  return n === 3
}
