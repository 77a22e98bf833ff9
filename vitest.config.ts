import { availableParallelism } from 'node:os'
import { defineConfig } from 'vitest/config'

// Most test files spend much of their time waiting on child processes, sockets,
// nats-server and Postgres, so vitest's default (one file per core but one) runs a
// 2-core CI machine's files one by one at about half its CPU. One file per core:
// every file makes its own temp dirs, free ports and Postgres database, so files can
// share the machine; more files than cores starves the process-heavy ones into their
// timeouts on a loaded machine. MESHMIRROR_TEST_WORKERS overrides the count.
const workers = Number(process.env.MESHMIRROR_TEST_WORKERS) || availableParallelism()

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    maxWorkers: workers,
    reporters: process.env.CI ? ['default'] : ['default'],
  },
})
