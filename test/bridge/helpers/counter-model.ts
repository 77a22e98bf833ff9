import {
  type Document,
  type JsonValue,
  type ModelDefinition,
  type Row,
  rejectDocument,
  type SyncAdapter,
} from '../../../src/index.js'

/** The seed's counter model, as an app's existing table would hold it. */
export const COUNTERS_DDL = `CREATE TABLE IF NOT EXISTS counters (
  id TEXT PRIMARY KEY NOT NULL,
  branch_id INTEGER NOT NULL,
  business_id INTEGER NOT NULL,
  receipt_type TEXT NOT NULL,
  tot_rcpt_no INTEGER NOT NULL DEFAULT 0,
  cur_rcpt_no INTEGER NOT NULL DEFAULT 0,
  invc_no INTEGER NOT NULL DEFAULT 0,
  bhf_id TEXT,
  last_touched TEXT,
  created_at TEXT NOT NULL
)`

/** Inserts a whole counters row (named parameters, as `counter()` makes them). */
export const INSERT_COUNTER =
  'INSERT INTO counters (id, branch_id, business_id, receipt_type, tot_rcpt_no, cur_rcpt_no, invc_no, bhf_id, last_touched, created_at) VALUES (@id, @branch_id, @business_id, @receipt_type, @tot_rcpt_no, @cur_rcpt_no, @invc_no, @bhf_id, @last_touched, @created_at)'

export const counterModel: ModelDefinition = { name: 'counters', primaryKey: 'id' }

export interface CounterRow extends Row {
  id: string
  branch_id: number
  business_id: number
  receipt_type: string
  tot_rcpt_no: number
  cur_rcpt_no: number
  invc_no: number
  bhf_id: string | null
  last_touched: string | null
  created_at: string
}

/** A counter row for tests. */
export function counter(i: number, over: Partial<CounterRow> = {}): CounterRow {
  return {
    id: `c${String(i).padStart(6, '0')}`,
    branch_id: 1,
    business_id: 10,
    receipt_type: 'NS',
    tot_rcpt_no: i,
    cur_rcpt_no: i,
    invc_no: i,
    bhf_id: '00',
    last_touched: '2025-01-01T00:00:00.000Z',
    created_at: '2025-01-01T00:00:00.000Z',
    ...over,
  }
}

function int(doc: Document, field: string, alias: string): number {
  const v = doc[field] ?? doc[alias]
  if (typeof v !== 'number' || !Number.isInteger(v)) {
    rejectDocument(v === undefined ? `${field} is missing` : `${field} is not an integer`, { field })
  }
  return v
}

function str(doc: Document, field: string, alias: string, optional = false): string | null {
  const v: JsonValue | undefined = doc[field] ?? doc[alias]
  if ((v === undefined || v === null) && optional) return null
  if (typeof v !== 'string')
    rejectDocument(v === undefined ? `${field} is missing` : `${field} is not a string`, { field })
  return v
}

/**
 * The seed's counter adapter: scoped to the current branch, reading the
 * snake_case aliases older writers used.
 */
export const counterAdapter: SyncAdapter<CounterRow> = {
  model: 'counters',
  collection: 'counters',
  observerQuery: (ctx) => (ctx.branchId === undefined ? null : { branchId: ctx.branchId }),
  documentId: (row) => String(row.id),
  toDocument: (row) => ({
    _id: String(row.id),
    branchId: row.branch_id,
    businessId: row.business_id,
    receiptType: row.receipt_type,
    totRcptNo: row.tot_rcpt_no,
    curRcptNo: row.cur_rcpt_no,
    invcNo: row.invc_no,
    bhfId: row.bhf_id,
    lastTouched: row.last_touched,
    createdAt: row.created_at,
  }),
  fromDocument: (doc) => ({
    id: doc._id,
    branch_id: int(doc, 'branchId', 'branch_id'),
    business_id: int(doc, 'businessId', 'business_id'),
    receipt_type: str(doc, 'receiptType', 'receipt_type') as string,
    tot_rcpt_no: int(doc, 'totRcptNo', 'tot_rcpt_no'),
    cur_rcpt_no: int(doc, 'curRcptNo', 'cur_rcpt_no'),
    invc_no: int(doc, 'invcNo', 'invc_no'),
    bhf_id: str(doc, 'bhfId', 'bhf_id', true),
    last_touched: str(doc, 'lastTouched', 'last_touched', true),
    created_at: str(doc, 'createdAt', 'created_at') as string,
  }),
}
