import type Database from 'better-sqlite3'
import { ErrorCode, StorageError } from '../errors.js'
import { type ModelInfo, quoteIdent } from './model-definition.js'
import { PARKED_DDL } from './parked-store.js'
import { idExpression } from './row-key.js'

/** Version of the tables below; stored in `_meshmirror_meta`. */
export const SYNC_SCHEMA_VERSION = 1

/**
 * Tables meshmirror keeps in the application's database.
 *
 * - `_meshmirror_outbox`: writes captured by triggers, drained into the mesh.
 *   An update also records the row as it was before (JSON): the base that
 *   tells which fields the app changed, so only those are sent.
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
 * The row before an update as a JSON object. BLOB values (which JSON cannot
 * hold, and which would make the app's write fail) are left out.
 */
function oldRowJson(model: ModelInfo): string {
  const pairs = [...model.columns.keys()].map((c) => {
    const ref = `OLD.${quoteIdent(c)}`
    return `'${c.replaceAll("'", "''")}', CASE typeof(${ref}) WHEN 'blob' THEN NULL ELSE ${ref} END`
  })
  return `json_object(${pairs.join(', ')})`
}

/** The CREATE TRIGGER statements capturing a model's writes. */
export function captureTriggers(model: ModelInfo): Record<string, string> {
  const t = quoteIdent(model.table)
  const names = triggerNames(model)
  const newId = idExpression(model, 'NEW')
  const oldId = idExpression(model, 'OLD')
  const keyChanged = model.keys.map((k) => `OLD.${quoteIdent(k)} IS NOT NEW.${quoteIdent(k)}`).join(' OR ')
  const keySame =
    model.keys.length === 1
      ? `${oldId} IS ${newId}`
      : model.keys.map((k) => `OLD.${quoteIdent(k)} IS NEW.${quoteIdent(k)}`).join(' AND ')
  const entry = (id: string, op: string) =>
    `INSERT INTO _meshmirror_outbox (model, row_id, op, at) VALUES ('${model.name}', ${id}, '${op}', ${NOW_MS});`
  return {
    [names.insert]: `CREATE TRIGGER ${quoteIdent(names.insert)} AFTER INSERT ON ${t} WHEN ${NOT_APPLYING} BEGIN ${entry(newId, 'upsert')} END`,
    // A changed primary key is a removal of the old id and a write of the new one (which has no earlier state).
    [names.update]: `CREATE TRIGGER ${quoteIdent(names.update)} AFTER UPDATE ON ${t} WHEN ${NOT_APPLYING} BEGIN INSERT INTO _meshmirror_outbox (model, row_id, op, at) SELECT '${model.name}', ${oldId}, 'delete', ${NOW_MS} WHERE ${keyChanged}; INSERT INTO _meshmirror_outbox (model, row_id, op, at, old) VALUES ('${model.name}', ${newId}, 'upsert', ${NOW_MS}, CASE WHEN ${keySame} THEN ${oldRowJson(model)} END); END`,
    [names.delete]: `CREATE TRIGGER ${quoteIdent(names.delete)} AFTER DELETE ON ${t} WHEN ${NOT_APPLYING} BEGIN ${entry(oldId, 'delete')} END`,
  }
}

/**
 * Installs (or removes) a model's capture triggers. Existing triggers are
 * replaced only when their SQL differs, so reopening does not touch the schema.
 */
export function setCapture(db: Database.Database, model: ModelInfo, enabled: boolean): void {
  const wanted = captureTriggers(model)
  const existing = new Map(
    (
      db
        .prepare("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name IN (?, ?, ?)")
        .all(...Object.values(triggerNames(model))) as { name: string; sql: string }[]
    ).map((r) => [r.name, r.sql]),
  )
  for (const [name, sql] of Object.entries(wanted)) {
    const current = existing.get(name)
    if (enabled && current === sql) continue
    if (current !== undefined) db.exec(`DROP TRIGGER ${quoteIdent(name)}`)
    if (enabled) db.exec(sql)
  }
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
