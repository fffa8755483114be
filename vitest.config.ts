import { defineConfig } from 'vitest/config';
import { DigestingReporter } from './test/support/error-digest-reporter.ts';

export default defineConfig({
  test: {
    include: ['**/src/**/*.test.ts', '**/test/**/*.test.ts'],
    exclude: ['**/node_modules/**', '**/dist/**', '.testenv/**', '.cache/**'],
    // Brings the real test environment up (or reuses it) and exports its addresses.
    globalSetup: ['test/global-setup.ts'],
    // Integration tests talk to real Postgres, Kafka and a kube-apiserver on a 2-core machine.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    teardownTimeout: 60_000,
    pool: 'forks',
    // A one-line digest of unhandled errors right above the summary (CI keeps the log's tail).
    reporters: [new DigestingReporter()],
  },
});
