// Prints Vitest's JSON report as one plain closing line: "N passed, N failed, N skipped".
import { readFileSync } from 'node:fs';

const file = process.argv[2] ?? '.tmp/vitest-report.json';
const r = JSON.parse(readFileSync(file, 'utf8'));
console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + (r.numTodoTests ?? 0)} skipped`);
process.exit(r.numFailedTests > 0 || r.success === false ? 1 : 0);
