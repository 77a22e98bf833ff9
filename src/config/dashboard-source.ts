import Database from 'better-sqlite3'
import type { SyncEvents } from '../bridge/events.js'
import type { SyncMetrics } from '../bridge/metrics.js'
import { checkDashboardOptions, type DashboardOptions } from '../dashboard/access.js'
import { type RunningDashboard, startDashboard } from '../dashboard/server.js'
import type {
  DashboardSnapshot,
  DashboardSource,
  DashboardSourceEvents,
  DashboardTable,
  DocChange,
  ModelCounts,
  Problem,
  RowView,
} from '../dashboard/source.js'
import { type Logger, silentLogger } from '../logger.js'
import type { ConflictRecord } from '../mesh/conflict.js'
import type { JsonValue } from '../mesh/document.js'
import type { MeshStore } from '../mesh/mesh-store.js'
import { isPostgresUrl } from '../postgres/postgres-repository.js'
import type { ParkedDocument, Repository, Row } from '../repository/repository.js'
import { Emitter } from '../util/emitter.js'
import { configError, type ResolvedConfig } from './load-config.js'
import type { ResolvedModels } from './resolve-models.js'
import type { PeerSnapshot } from './status-snapshot.js'

/** The events of a running peer its dashboard follows (a part of `PeerEvents`). */
export interface PeerDashboardEvents {
  snapshot: PeerSnapshot
  conflict: ConflictRecord
  parked: SyncEvents['parked']
  rejected: SyncEvents['rejected']
}

/** What of a running peer its dashboard reads. */
export interface PeerParts {
  backend: 'builtin' | 'ditto'
  database: string
  models: ResolvedModels
  mesh(): MeshStore
  /** The repository, once open. */
  repository(): Repository | undefined
  metrics(): SyncMetrics | undefined
  snapshot(): Promise<PeerSnapshot>
  on: <E extends keyof PeerDashboardEvents>(event: E, listener: (payload: PeerDashboardEvents[E]) => void) => () => void
}

/** Rows a search of a `local`-keyed table looks at, at most. */
const SCAN_ROWS = 20_000

/** Recent local rejections (the database refusing the app's own rows): not kept anywhere else. */
const REJECTED_KEPT = 200

/** The running peer as its dashboard sees it: reads only. */
export class PeerDashboardSource implements DashboardSource {
  private readonly events = new Emitter<DashboardSourceEvents>(silentLogger)
  private readonly rejected: Problem[] = []
  private reader: Database.Database | undefined
  private readonly byTable: Map<string, DashboardTable>
  private readonly offs: (() => void)[]

  constructor(private readonly peer: PeerParts) {
    this.byTable = new Map(this.tables().map((t) => [t.table, t]))
    this.offs = [
      peer.on('snapshot', (s) => this.events.emit('snapshot', s)),
      peer.on('conflict', (c) => this.problemSeen(this.conflict(c))),
      peer.on('parked', (p) => {
        const t = this.tableOfModel(p.model)
        this.problemSeen({
          kind: 'parked',
          table: t?.table ?? p.model,
          collection: t?.collection,
          id: p.id,
          reason: p.reason,
          at: Date.now(),
        })
      }),
      peer.on('rejected', (r) => {
        const t = this.tableOfModel(r.model)
        // A refused remote document is kept (and listed from there); a local one only shows here.
        this.problemSeen({
          kind: r.direction === 'local' ? 'rejected' : 'refused',
          table: t?.table ?? r.model,
          collection: t?.collection,
          id: r.id,
          reason: r.message,
          code: r.reason,
          at: Date.now(),
        })
      }),
    ]
  }

  get siteId(): string {
    return this.peer.mesh().siteId
  }

  get backend(): 'builtin' | 'ditto' {
    return this.peer.backend
  }

  private problemSeen(p: Problem): void {
    if (p.kind === 'rejected') {
      this.rejected.unshift(p)
      this.rejected.length = Math.min(this.rejected.length, REJECTED_KEPT)
    }
    this.events.emit('problem', p)
  }

  tables(): DashboardTable[] {
    const { models, adapters, schema } = this.peer.models
    return models.flatMap((def) => {
      const adapter = adapters.find((a) => a.model === def.name)
      if (!adapter) return []
      const table = def.table ?? def.name
      const columns = [...(schema.tables.get(table)?.columns ?? [])].map((c) => c.name)
      const keys =
        def.primaryKey === undefined ? [] : typeof def.primaryKey === 'string' ? [def.primaryKey] : [...def.primaryKey]
      return [
        {
          table,
          model: def.name,
          collection: adapter.collection,
          keyColumns: keys.length > 0 ? keys : (this.peer.repository()?.keyColumns(def.name) ?? []),
          columns: columns.length > 0 ? columns : Object.keys(def.columns ?? {}),
          direction: adapter.direction ?? 'bidirectional',
        },
      ]
    })
  }

  snapshot(): Promise<DashboardSnapshot> {
    return this.peer.snapshot()
  }

  modelCounts(): Record<string, ModelCounts> {
    const out: Record<string, ModelCounts> = {}
    for (const [model, m] of Object.entries(this.peer.metrics()?.byModel ?? {})) {
      out[model] = { applied: m.applied, pushed: m.pushed, rejected: m.rejected, parked: m.parked }
    }
    return out
  }

  on<E extends keyof DashboardSourceEvents>(event: E, listener: (payload: DashboardSourceEvents[E]) => void) {
    return this.events.on(event, listener)
  }

  private tableOfModel(model: string): DashboardTable | undefined {
    for (const t of this.byTable.values()) if (t.model === model) return t
    return undefined
  }

  private tableOfCollection(collection: string): DashboardTable | undefined {
    for (const t of this.byTable.values()) if (t.collection === collection) return t
    return undefined
  }

  private kept(p: ParkedDocument): Problem {
    const t = this.tableOfModel(p.model)
    return {
      kind: p.state,
      table: t?.table ?? p.model,
      collection: t?.collection,
      id: p.id,
      reason: p.reason,
      ...(p.code ? { code: p.code } : {}),
      at: p.updatedAt,
      detail: {
        op: p.op,
        attempts: p.attempts,
        since: new Date(p.since).toISOString(),
        waitsFor: p.waitsFor,
        waitsKey: p.waitsKey,
      },
    }
  }

  /** A conflict as a problem. */
  conflict(c: ConflictRecord): Problem {
    return {
      kind: 'conflict',
      table: this.tableOfCollection(c.collection)?.table,
      collection: c.collection,
      id: c.id,
      reason:
        c.kind === 'create'
          ? `created on two devices (${c.winner.site}, ${c.loser.site}) that had not seen each other's; ${c.winner.site}'s version won`
          : `field ${c.field} changed on ${c.winner.site} and ${c.loser.site} at once; ${c.winner.site}'s write won`,
      at: Date.parse(c.detectedAt),
      detail: { winner: c.winner, loser: c.loser } as unknown as JsonValue,
    }
  }

  async problems(limit: number): Promise<Problem[]> {
    const out: Problem[] = [...this.rejected]
    const repo = this.peer.repository()
    if (repo) for (const p of await repo.parked({ limit })) out.push(this.kept(p))
    const mesh = this.peer.mesh()
    if (mesh.conflicts) for (const c of await mesh.conflicts({ limit })) out.push(this.conflict(c))
    return out.sort((a, b) => b.at - a.at).slice(0, limit)
  }

  private db(): Database.Database {
    this.reader ??= new Database(this.peer.database, { readonly: true, fileMustExist: true })
    this.reader.pragma('busy_timeout = 2000')
    return this.reader
  }

  async search(
    table: string,
    text: string,
    limit: number,
  ): Promise<{ rowId: string; row: Record<string, JsonValue> }[]> {
    const t = this.byTable.get(table)
    const repo = this.peer.repository()
    if (!t || !repo) return []
    const needle = text.trim()
    const def = this.peer.models.models.find((d) => d.name === t.model)
    // A `local`-keyed table names its rows by mesh ids the database does not hold: read them through the repository.
    if (def?.keys === 'local' || isPostgresUrl(this.peer.database)) return this.scanFor(t, needle, limit)
    const q = (name: string) => `"${name.replaceAll('"', '""')}"`
    const keys = t.keyColumns.length > 0 ? t.keyColumns : ['rowid']
    let sql = `SELECT ${keys.map(q).join(', ')} FROM ${q(t.table)}`
    const params: unknown[] = []
    if (needle !== '') {
      const like = `%${needle.replace(/[\\%_]/g, (c) => `\\${c}`)}%`
      const exact = keys.map((k) => `CAST(${q(k)} AS TEXT) = ?`).join(' AND ')
      const any = t.columns.map((c) => `CAST(${q(c)} AS TEXT) LIKE ? ESCAPE '\\'`).join(' OR ')
      sql += ` WHERE (${exact}) OR ${any || '0'} ORDER BY (${exact}) DESC`
      params.push(...keys.map(() => needle), ...t.columns.map(() => like), ...keys.map(() => needle))
    }
    sql += ' LIMIT ?'
    params.push(limit)
    const found = this.db()
      .prepare(sql)
      .all(...params) as Row[]
    const ids = found.map((k) => repo.rowId(t.model, k))
    const rows = await repo.getMany(t.model, ids)
    return ids.flatMap((rowId) => {
      const row = rows.get(rowId)
      return row ? [{ rowId, row: row as Record<string, JsonValue> }] : []
    })
  }

  /** Rows whose id or any value contains `needle`, read in key order (at most `SCAN_ROWS` rows looked at). */
  private async scanFor(
    t: DashboardTable,
    needle: string,
    limit: number,
  ): Promise<{ rowId: string; row: Record<string, JsonValue> }[]> {
    const repo = this.peer.repository()!
    const text = needle.toLowerCase()
    const out: { rowId: string; row: Record<string, JsonValue> }[] = []
    let after: string | null = null
    for (let seen = 0; seen < SCAN_ROWS && out.length < limit; ) {
      const page = await repo.scan(t.model, { after, limit: 500 })
      if (page.length === 0) break
      seen += page.length
      for (const row of page) {
        const rowId = repo.rowId(t.model, row)
        after = rowId
        const values = Object.values(row).map((v) => (typeof v === 'string' ? v : JSON.stringify(v)))
        if (text === '' || rowId.toLowerCase() === text || values.some((v) => v.toLowerCase().includes(text))) {
          out.push({ rowId, row: row as Record<string, JsonValue> })
          if (out.length >= limit) break
        }
      }
    }
    return out
  }

  async row(table: string, rowId: string): Promise<RowView | undefined> {
    const t = this.byTable.get(table)
    const repo = this.peer.repository()
    if (!t || !repo) return undefined
    const mesh = this.peer.mesh()
    const row = (await repo.get(t.model, rowId)) ?? null
    let docId = rowId
    const adapter = this.peer.models.adapters.find((a) => a.model === t.model)
    if (row && adapter) {
      try {
        docId = adapter.documentId(row)
      } catch {
        // A row the adapter cannot name (it would be refused too): shown by its row id.
      }
    }
    const doc = (await mesh.get(t.collection, docId)) ?? null
    const fields = mesh.fieldHistory ? ((await mesh.fieldHistory(t.collection, docId)) ?? null) : null
    const outbox = (await repo.pendingChanges({ models: [t.model], limit: 10_000 }))
      .filter((c) => c.id === rowId)
      .map((c) => ({ seq: c.seq, op: c.op, at: c.at }))
    const keptEntry = (await repo.parked({ model: t.model, limit: 10_000 })).find(
      (p) => p.id === docId || p.id === rowId,
    )
    if (!row && !doc && !fields && !keptEntry && outbox.length === 0) return undefined
    return {
      table,
      rowId,
      docId,
      row: row as Record<string, JsonValue> | null,
      doc: doc as Record<string, JsonValue> | null,
      fields,
      outbox,
      kept: keptEntry ? this.kept(keptEntry) : undefined,
    }
  }

  cursor(): Promise<string> {
    return this.peer.mesh().currentCursor()
  }

  async changes(collection: string, cursor: string, limit: number): Promise<{ changes: DocChange[]; cursor: string }> {
    const mesh = this.peer.mesh()
    const set = await mesh.changesSince(cursor, { collection }, { limit })
    const changes: DocChange[] = []
    const ids = [
      ...set.changed.map((d) => ({ id: d._id, removed: false })),
      ...set.removed.map((id) => ({ id, removed: true })),
    ]
    for (const { id, removed } of ids) {
      const h = mesh.fieldHistory ? await mesh.fieldHistory(collection, id) : undefined
      if (!h) {
        changes.push({ id, removed })
        continue
      }
      const latest = h.written.clock
      changes.push({
        id,
        removed,
        site: h.written.site,
        writtenAt: h.written.writtenAt,
        fields: h.fields
          .filter((f) => f.clock === latest || f.increments?.some((i) => i.clock === latest))
          .map((f) => f.field),
      })
    }
    return { changes, cursor: set.cursor }
  }

  close(): void {
    for (const off of this.offs.splice(0)) off()
    this.reader?.close()
    this.reader = undefined
    this.events.clear()
  }
}

/** Env variable a dashboard token is read from when the config and the options give none. */
export const DASHBOARD_TOKEN_ENV = 'MESHMIRROR_DASHBOARD_TOKEN'

/**
 * The dashboard a peer serves: the `dashboard` option in code wins over the
 * config's `dashboard` key (`false` turns a configured one off); a token
 * written `$ENV_NAME` is read from the environment, and without any token
 * `MESHMIRROR_DASHBOARD_TOKEN` is used when set.
 */
export function dashboardOptions(
  config: ResolvedConfig,
  option: DashboardOptions | false | undefined,
): DashboardOptions | undefined {
  if (option === false) return undefined
  const chosen = option ?? config.dashboard
  if (!chosen) return undefined
  let token = chosen.token
  if (token?.startsWith('$')) {
    const value = process.env[token.slice(1)]
    if (value === undefined || value === '') {
      throw configError(config.file ?? 'config', 'dashboard.token', `environment variable ${token.slice(1)} is not set`)
    }
    token = value
  }
  token ??= process.env[DASHBOARD_TOKEN_ENV] || undefined
  if (option === undefined && token !== undefined && token.length < 16) {
    throw configError(config.file ?? 'config', 'dashboard.token', 'expected at least 16 characters')
  }
  const out = { ...chosen, ...(token === undefined ? {} : { token }) }
  checkDashboardOptions(out)
  return out
}

/** Serves the dashboard of a peer; closing it stops following the peer too. */
export async function servePeerDashboard(
  parts: PeerParts,
  options: DashboardOptions,
  logger: Logger,
): Promise<RunningDashboard> {
  const source = new PeerDashboardSource(parts)
  try {
    const dashboard = await startDashboard(source, options, logger)
    const close = dashboard.close.bind(dashboard)
    return Object.assign(dashboard, {
      close: async () => {
        await close()
        source.close()
      },
    })
  } catch (error) {
    source.close()
    throw error
  }
}
