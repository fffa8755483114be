/**
 * vitest's default reporter plus a one-line digest of each unhandled error (name, message,
 * first stack frame, the test file it surfaced in) printed right above the summary, so a CI log
 * that keeps only its last lines still says what went wrong. Prints nothing extra on a clean run.
 */
import { DefaultReporter } from 'vitest/node';

type Serialized = { name?: string; message?: string; stack?: string; VITEST_TEST_PATH?: string };

export class DigestingReporter extends DefaultReporter {
  override reportTestSummary(...args: Parameters<DefaultReporter['reportTestSummary']>): void {
    const errors = args[1] as Serialized[];
    if (errors.length > 0) {
      const lines = errors.map((err, i) => {
        const frame = err.stack
          ?.split('\n')
          .map((l) => l.trim())
          .find((l) => l.startsWith('at ') || l.startsWith('❯'));
        const where = err.VITEST_TEST_PATH ? ` [in ${err.VITEST_TEST_PATH}]` : '';
        return `  ${i + 1}. ${err.name ?? 'Error'}: ${err.message ?? String(err)}${frame ? ` (${frame})` : ''}${where}`;
      });
      this.ctx.logger.log(`\nunhandled errors, in short (${errors.length}):\n${lines.join('\n')}`);
    }
    super.reportTestSummary(...args);
  }
}
