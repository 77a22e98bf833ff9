import { BackupLink, Field, Id, SyncModel } from '../../src/index.js'

/** A line of an order. Backup restore follows it to its order, and on to the branch. */
@SyncModel('order_items', { scope: ['branchId'] })
export class OrderItem {
  @Id() id!: string
  @Field({ column: 'order_id' })
  @BackupLink({ model: 'orders', cascade: true })
  orderId!: string
  @Field({ column: 'branch_id', type: 'integer' })
  @BackupLink({ model: 'branches' })
  branchId!: number
  @Field({ column: 'product_id' }) productId!: string
  @Field({ type: 'integer' }) quantity!: number
  @Field({ column: 'unit_price', type: 'integer' }) unitPrice!: number
}
