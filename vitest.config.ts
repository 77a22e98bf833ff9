import { availableParallelism } from 'node:os'
import { defineConfig } from 'vitest/config'

// Most test files spend their time waiting on child processes, sockets, nats-server
// and Postgres rather than on the CPU, so one file per core (vitest's default
// leaves one core free) would leave a 2-core CI machine half idle. Every file
// makes its own temp dirs, free ports and Postgres database, so files can share
// the machine. MESHMIRROR_TEST_WORKERS overrides the count (1 runs them one at a time).
const workers = Number(process.env.MESHMIRROR_TEST_WORKERS) || availableParallelism() + 1

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
