// Started detached by a process that exits (or is killed) with labs still up: takes those labs
// down after it is gone. Usage: node --import tsx test/lab/reap.ts INDEX...
import { downLab } from './lab.ts';

for (const arg of process.argv.slice(2)) {
  // Each lab on its own, so one failing teardown does not leave the others behind.
  await downLab(Number(arg)).catch((err: unknown) => {
    process.exitCode = 1;
    console.error(`lab ${arg}: teardown failed: ${String(err)}`);
  });
}
