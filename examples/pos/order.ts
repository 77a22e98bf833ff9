import { BackupLink, Field, Id, SyncModel } from '../../src/index.js'

export enum OrderStatus {
  Open = 'open',
  Paid = 'paid',
  Void = 'void',
}

/** A customer order. Backup restore brings its branch along. */
@SyncModel('orders', { scope: ['branchId'] })
export class Order {
  @Id() id!: string
  @Field({ column: 'branch_id', type: 'integer' })
  @BackupLink({ model: 'branches' })
  branchId!: number
  status!: OrderStatus
  /** Total in minor units. */
  @Field({ type: 'integer' }) total!: number
  note?: string
  customer!: { name: string; phone?: string } | null
  @Field({ column: 'created_at' }) createdAt!: Date
}
