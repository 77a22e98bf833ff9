import { Id, SyncModel } from '../../src/index.js'

/** A shop branch. Every till of the chain receives every branch. */
@SyncModel('branches')
export class Branch {
  @Id() id!: string
  name!: string
  active!: boolean
}
