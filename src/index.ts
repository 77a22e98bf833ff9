/**
 * meshmirror: mirror an application's local database into a peer-to-peer,
 * replicated document store (the mesh), and back.
 *
 * @packageDocumentation
 */

// The sync bridge
export {
  type BackupLink as BackupLinkSpec,
  Direction,
  rejectDocument,
  type SyncAdapter,
  type SyncContext,
  withContext,
} from './bridge/adapter.js'
export type { RestoreCounts, RestoreOptions, RestoreReport } from './bridge/backup-restore.js'
export type { CatchUpReport } from './bridge/catch-up.js'
export { createSyncCoordinator, type SyncCoordinator, type SyncCoordinatorOptions } from './bridge/coordinator.js'
export type { DriftedDocument, DriftKind, VerifyOptions, VerifyReport } from './bridge/drift-report.js'
export type { CoordinatorState, SyncEventListener, SyncEvents, SyncPhase } from './bridge/events.js'
export type { NotifyResult } from './bridge/local-notify.js'
export type { ModelMetrics, SyncMetrics } from './bridge/metrics.js'
export { createSyncRegistry, type Eventually, type SyncRegistry, type SyncRegistryOptions } from './bridge/registry.js'
export type { SeedReport } from './bridge/seeder.js'
export { SEED_SETTINGS, type SyncSettings } from './bridge/settings.js'
export type { StartupReport } from './bridge/startup.js'
export { fromDocValue, readField, toDocValue } from './codegen/convert.js'
// Models and generated adapters
export {
  type AnyClass,
  BackupLink,
  CounterField,
  type DecoratedModel,
  decoratedModel,
  Field,
  type FieldOptions,
  Id,
  Ignore,
  SyncModel,
  type SyncModelOptions,
} from './codegen/decorators.js'
export {
  type DefinedModel,
  defineModel,
  type FieldInput,
  type FieldTypeInput,
  idOf,
  inScope,
  keyFromId,
  type ModelInput,
  type ScopeSpec,
  type SyncAdapterHooks,
  scopeFilter,
} from './codegen/define-model.js'
export { type GenerateOptions, type GenerateResult, generate, ModelSourceError } from './codegen/generate.js'
export type { FieldSpec, FieldType, ModelSpec } from './codegen/model-spec.js'
export type { ModelProblem } from './codegen/parse.js'
// Config files and running a peer from one (`meshmirror peer`)
export type { HubConfig, MeshmirrorConfig, TableMapping } from './config/config-schema.js'
export { loadConfig, parseConfig, type ResolvedConfig } from './config/load-config.js'
export type { ResolvedModels } from './config/resolve-models.js'
export {
  type OpenedPeer,
  openPeer,
  type PeerEvents,
  type PeerOptions,
  type RunningPeer,
  startPeer,
} from './config/start-peer.js'
export type { HubLinkSnapshot, PeerLink, PeerPhase, PeerSnapshot } from './config/status-snapshot.js'
export type { DatabaseSchema, TableColumn, TableSchema } from './config/table-schema.js'
export type { DashboardOptions } from './dashboard/access.js'
export type { RunningDashboard } from './dashboard/server.js'
// The builtin engine
export { builtinEngine } from './engine/builtin-engine.js'
export {
  cleanupMeshDirs,
  diagnose,
  listMeshDirs,
  type MeshInstance,
  type OpenInstanceOptions,
  openMeshInstance,
} from './engine/default-instance.js'
export type {
  ApplyRemoteOptions,
  ApplyRemoteResult,
  BuiltinMesh,
  BuiltinMeshStats,
  ChangeChunk,
  CounterEntries,
  DocMeta,
  OpenMeshOptions,
  RemoteChange,
  SiteId,
  VersionVector,
} from './engine/types.js'
// Errors
export {
  AbortError,
  ClosedError,
  ErrorCode,
  type ErrorDetails,
  hasCode,
  LockHeldError,
  type LockHolder,
  MeshmirrorError,
  QueryError,
  StorageError,
  ValidationError,
} from './errors.js'
// The hub tier: a builtin mesh linked to a NATS JetStream hub (docs/hub.md)
export {
  type HubLink,
  type HubLinkEvents,
  type HubState,
  type HubStatus,
  startHubLink,
} from './hub/hub-link.js'
export type { HubCollection, HubOptions, HubTls } from './hub/hub-options.js'
export type {
  AnyEngine,
  CleanupOptions,
  CleanupReport,
  ListOptions as ListMeshDirsOptions,
  MeshDirInfo,
} from './instance/dirs.js'
export type { Diagnosis } from './instance/doctor.js'
// The instance manager
export { closeAllInstances } from './instance/instance.js'
export type { LockMode, LockOptions } from './instance/lock.js'
export type { MeshEngine, MigrationProgress, StoreDescription } from './instance/mesh-engine.js'
export type { MigratedMarker } from './instance/migrated-marker.js'
export type { OwnerRecord } from './instance/owner.js'
export type {
  ClosableStore,
  DirectoryStrategy,
  EngineInstance,
  EngineInstanceOptions,
  InstanceEvents,
  InstanceHealth,
  MigrationReport,
} from './instance/types.js'
export type { Logger } from './logger.js'
export { silentLogger } from './logger.js'
// The mesh port
export type { ConflictKind, ConflictQuery, ConflictRecord, ConflictVersion } from './mesh/conflict.js'
export type { DocIdInput, Document, DocumentInput, JsonObject, JsonValue } from './mesh/document.js'
export type { FieldHistory, FieldWrite } from './mesh/field-history.js'
export {
  type CompareOp,
  type CompiledQuery,
  type CompiledScope,
  compileQuery,
  compileScope,
  type NormalisedFilter,
  type SortKey,
} from './mesh/filter.js'
export { canonicalJson, jsonEqual } from './mesh/json.js'
export { applyQueryInMemory, compareValues, matches } from './mesh/match.js'
export type {
  ChangeCursor,
  ChangeSet,
  ChangesSinceOptions,
  MeshStore,
  MeshStoreEvents,
  MeshStoreStats,
  MeshWriter,
  ObserveOptions,
  Observer,
  ObserverChange,
  ObserverListener,
  RemovedDocument,
  UpsertMode,
  UpsertOptions,
  WriteResult,
} from './mesh/mesh-store.js'
export type { FieldOperators, Filter, FilterScalar, OrderBy, Query, Scope, SortDirection } from './mesh/query.js'
export { DEFAULT_MAX_DOC_BYTES } from './mesh/validate.js'
export {
  openPostgresRepository,
  type PostgresRepository,
  type PostgresRepositoryOptions,
  type PostgresRepositoryState,
} from './postgres/postgres-repository.js'
// Replication of the builtin engine (openMesh opens a local store, or a replicated one with meshId and secret)
export {
  type OpenReplicatedMeshOptions,
  openMesh,
  openReplicatedMesh,
  type ReplicatedMesh,
} from './replication/open-replicated-mesh.js'
export { DEFAULT_PEER_LIMITS, type PeerLimits } from './replication/peer-limits.js'
export type { PeerState, PeerStatus } from './replication/peer-session.js'
export { PROTOCOL_VERSION } from './replication/protocol.js'
export {
  type ReplicationEvents,
  type ReplicationOptions,
  type ReplicationStats,
  type Replicator,
  startReplication,
} from './replication/replicator.js'
export type { Connection, LinkSecurity, Listener, Transport } from './replication/transport.js'
export { type WsTransportOptions, wsTransport } from './replication/ws-transport.js'
// The repository port and its SQLite implementation
export type { ForeignKey } from './repository/foreign-keys.js'
export type { LongTransaction } from './repository/lock-hold.js'
export type { ColumnType, KeyMode, ModelDefinition } from './repository/model-definition.js'
export {
  type CapturedChange,
  type ChangeDetection,
  type ChangeOrigin,
  DELETED_HASH,
  type DocSyncState,
  type DocSyncStateEntry,
  Outcome,
  type ParkEntry,
  type ParkedDocument,
  type RemoteBatch,
  type RemoteBatchResult,
  type RemoteWrite,
  type Repository,
  type RepositoryEvents,
  type RepositoryStats,
  type RepositoryTx,
  type Row,
  type RowValue,
  type TransactionOptions,
  type WriteOutcome,
} from './repository/repository.js'
export {
  openSqliteRepository,
  type SqliteRepository,
  type SqliteRepositoryOptions,
} from './repository/sqlite-repository.js'
