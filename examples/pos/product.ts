import { CounterField, Field, Id, Ignore, SyncModel } from '../../src/index.js'

/** A product of a branch, with its stock level kept as a counter. */
@SyncModel('products', { scope: ['branchId'] })
export class Product {
  @Id() id!: string
  @Field({ column: 'branch_id', type: 'integer' }) branchId!: number
  name!: string
  /** Price in minor units. */
  @Field({ type: 'integer' }) price!: number
  tags!: string[]
  @CounterField({ type: 'integer' }) stock!: number
  @Ignore() selected = false
}
