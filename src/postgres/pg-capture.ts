import type { PgColumn } from './pg-types.js'

/** Version of the tables below; stored in `<schema>.meta`. */
export const PG_SYNC_SCHEMA_VERSION = 1

/** Quotes an SQL identifier. */
export function q(name: string): string {
  return `"${name.replaceAll('"', '""')}"`
}

/** A string literal. */
export function lit(text: string): string {
  return `'${text.replaceAll("'", "''")}'`
}

/** The setting a remote apply sets for its own transaction (`SET LOCAL`): the capture triggers skip it. */
export const APPLYING_SETTING = 'meshmirror.applying'

/** The channel the outbox notifies on (`LISTEN`), one per sync schema. */
export function channelOf(syncSchema: string): string {
  return `meshmirror_${syncSchema}`.slice(0, 63)
}

/** The session settings every connection of the repository (and every capture trigger) runs with. */
export const SESSION_SETTINGS: Readonly<Record<string, string>> = {
  TimeZone: 'UTC',
  DateStyle: 'ISO, YMD',
  bytea_output: 'hex',
  extra_float_digits: '1',
}

const FUNCTION_SETTINGS = Object.entries(SESSION_SETTINGS)
  .map(([k, v]) => `SET ${q(k)} = ${lit(v)}`)
  .join(' ')

/**
 * The tables meshmirror keeps, in their own schema (`meshmirror` by default)
 * so that removing the mirror is `DROP SCHEMA meshmirror CASCADE`:
 *
 * - `outbox`: writes captured by the triggers, in the writing transaction.
 *   `id` is the order of capture; `seq` is given when the mirror first reads
 *   the entry, in the order of `id`, so an entry a long transaction commits
 *   late gets a `seq` above everything read before it and is never
 *   acknowledged unseen.
 * - `sync_state`, `checkpoints`, `parked`, `meta`: as in a SQLite database.
 *
 * The trigger functions run as their owner (`SECURITY DEFINER`): the app's
 * roles need no rights on this schema.
 */
export function syncDdl(s: string): string {
  const S = q(s)
  return `
CREATE SCHEMA IF NOT EXISTS ${S};
CREATE TABLE IF NOT EXISTS ${S}.meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE IF NOT EXISTS ${S}.outbox (
  id bigserial PRIMARY KEY,
  seq bigint UNIQUE,
  model text NOT NULL,
  row_id text NOT NULL,
  op text NOT NULL,
  at bigint NOT NULL,
  old jsonb
);
CREATE INDEX IF NOT EXISTS outbox_row ON ${S}.outbox (model, row_id);
CREATE INDEX IF NOT EXISTS outbox_unread ON ${S}.outbox (id) WHERE seq IS NULL;
CREATE SEQUENCE IF NOT EXISTS ${S}.outbox_seq;
CREATE TABLE IF NOT EXISTS ${S}.sync_state (
  model text NOT NULL,
  id text NOT NULL,
  hash text NOT NULL,
  origin text NOT NULL,
  doc text,
  updated_at bigint NOT NULL,
  PRIMARY KEY (model, id)
) WITH (fillfactor = 70);
CREATE TABLE IF NOT EXISTS ${S}.checkpoints (key text PRIMARY KEY, value text NOT NULL, updated_at bigint NOT NULL);
CREATE TABLE IF NOT EXISTS ${S}.parked (
  model text NOT NULL,
  id text NOT NULL,
  state text NOT NULL,
  op text NOT NULL,
  reason text NOT NULL,
  code text,
  waits_for text,
  waits_key text,
  attempts integer NOT NULL,
  since bigint NOT NULL,
  updated_at bigint NOT NULL,
  PRIMARY KEY (model, id)
);
CREATE INDEX IF NOT EXISTS parked_waits ON ${S}.parked (waits_for, waits_key) WHERE waits_for IS NOT NULL;
CREATE OR REPLACE FUNCTION ${S}.notify() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $f$
BEGIN
  PERFORM pg_notify(${lit(channelOf(s))}, '');
  RETURN NULL;
END $f$;
DO $d$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'notify' AND tgrelid = '${S}.outbox'::regclass) THEN
    CREATE TRIGGER notify AFTER INSERT ON ${S}.outbox FOR EACH STATEMENT EXECUTE FUNCTION ${S}.notify();
  END IF;
END $d$;
`
}

/** What a capture trigger needs of a model. */
export interface CaptureModel {
  name: string
  schema: string
  table: string
  keys: readonly string[]
  columns: readonly PgColumn[]
}

/**
 * SQL computing a row's document id from `ref` (`NEW`, `OLD`, a table
 * alias): the same text `rowId()` gives for the row read back. One key: its
 * text. Several: the JSON array of their values (integers as numbers, the
 * rest as strings), written exactly as `JSON.stringify` writes it.
 */
export function idSql(model: Pick<CaptureModel, 'keys' | 'columns'>, ref: string): string {
  const col = (k: string) => `${ref}.${q(k)}`
  if (model.keys.length === 1) return `${col(model.keys[0]!)}::text`
  const parts = model.keys.map((k) => {
    const kind = model.columns.find((c) => c.name === k)?.kind
    return kind === 'int' ? `${col(k)}::text` : `to_json(${col(k)}::text)::text`
  })
  return `('[' || ${parts.join(" || ',' || ")} || ']')`
}

/** The row before a change, as a JSON object of its columns' text (decoded like a row read). */
function oldRowSql(model: CaptureModel): string {
  const names = model.columns.map((c) => lit(c.name)).join(', ')
  const values = model.columns.map((c) => `OLD.${q(c.name)}::text`).join(', ')
  return `json_object(ARRAY[${names}]::text[], ARRAY[${values}]::text[])::jsonb`
}

/** The name of a model's capture function (in the sync schema) and trigger (on its table). */
export function captureNames(model: Pick<CaptureModel, 'name'>): { fn: string; trigger: string } {
  return { fn: `capture_${model.name}`, trigger: `_meshmirror_capture_${model.name}`.slice(0, 63) }
}

/**
 * The capture function of a model: every insert, update and delete of any
 * session goes into the outbox in the writing transaction, except while
 * the transaction-local setting `meshmirror.applying` is `on` (a remote
 * apply). The function's own settings (UTC, ISO dates, hex bytea) hold
 * only while it runs: the app's session is left as it is.
 */
export function captureFunctionSql(model: CaptureModel, syncSchema: string): string {
  const S = q(syncSchema)
  const { fn } = captureNames(model)
  const name = lit(model.name)
  const now = '(extract(epoch FROM clock_timestamp()) * 1000)::bigint'
  const keyChanged = model.keys.map((k) => `OLD.${q(k)} IS DISTINCT FROM NEW.${q(k)}`).join(' OR ')
  const insert = (id: string, op: string, old: string) =>
    `INSERT INTO ${S}.outbox (model, row_id, op, at, old) VALUES (${name}, ${id}, '${op}', ${now}, ${old});`
  const oldRow = oldRowSql(model)
  return `CREATE OR REPLACE FUNCTION ${S}.${q(fn)}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog ${FUNCTION_SETTINGS} AS $f$
BEGIN
  IF current_setting(${lit(APPLYING_SETTING)}, true) = 'on' THEN RETURN NULL; END IF;
  IF TG_OP = 'INSERT' THEN
    ${insert(idSql(model, 'NEW'), 'upsert', 'NULL')}
  ELSIF TG_OP = 'UPDATE' THEN
    IF ${keyChanged} THEN
      ${insert(idSql(model, 'OLD'), 'delete', oldRow)}
      ${insert(idSql(model, 'NEW'), 'upsert', 'NULL')}
    ELSE
      ${insert(idSql(model, 'NEW'), 'upsert', oldRow)}
    END IF;
  ELSE
    ${insert(idSql(model, 'OLD'), 'delete', oldRow)}
  END IF;
  RETURN NULL;
END $f$`
}

/**
 * The trigger calling a model's capture function. Its WHEN condition skips
 * the call altogether for a remote apply's rows (the function checks again).
 */
export function captureTriggerSql(model: CaptureModel, syncSchema: string): string {
  const { fn, trigger } = captureNames(model)
  return `CREATE TRIGGER ${q(trigger)} AFTER INSERT OR UPDATE OR DELETE ON ${q(model.schema)}.${q(model.table)} FOR EACH ROW WHEN (current_setting(${lit(APPLYING_SETTING)}, true) IS DISTINCT FROM 'on') EXECUTE FUNCTION ${q(syncSchema)}.${q(fn)}()`
}
