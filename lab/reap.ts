// Started detached by a process that exits (or is killed) with labs still up: takes those labs
// down after it is gone. Usage: node --import tsx lab/reap.ts INDEX:ID...
// The id makes sure a lab is only removed if it is still the one its process started: by the time
// the reaper runs, someone may have taken it down and another lab may hold its index.
import { downLab } from './lab.ts';

for (const arg of process.argv.slice(2)) {
  const [index = '', id] = arg.split(':');
  if (!id) {
    process.exitCode = 1;
    console.error(`expected INDEX:ID, got ${JSON.stringify(arg)}`);
    continue;
  }
  // Each lab on its own, so one failing teardown does not leave the others behind.
  await downLab(Number(index), { id }).catch((err: unknown) => {
    process.exitCode = 1;
    console.error(`lab ${index}: teardown failed: ${String(err)}`);
  });
}
