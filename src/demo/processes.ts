// Moved to src/proc (one helper for the demo, the tests and the benchmarks); this module
// keeps the old import path working for code that still uses it.
export { childPids, freePort, groupPids, isAlive, startProcess, stopAll, type StartedProcess, type StartProcessOptions } from '../proc/index.js';
