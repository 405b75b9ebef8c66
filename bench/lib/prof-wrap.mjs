// Runs a Node script with the V8 CPU profiler started only once the script writes a line
// matching TRIGGER to stderr, and writes the profile at exit.
//   node bench/lib/prof-wrap.mjs OUT.cpuprofile 'TRIGGER-REGEX' SCRIPT [ARGS...]
// Why not `node --cpu-prof`: the profiler's SIGPROF interrupts the BPF verifier
// (BPF_PROG_LOAD fails with EAGAIN when a signal is pending), so the probes must be
// loaded before sampling starts.
import { writeFileSync } from 'node:fs';
import inspector from 'node:inspector';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const [out, trigger, script, ...rest] = process.argv.slice(2);
if (!out || !trigger || !script) {
  process.stderr.write('usage: node bench/lib/prof-wrap.mjs OUT.cpuprofile TRIGGER-REGEX SCRIPT [ARGS...]\n');
  process.exit(2);
}
process.argv = [process.argv[0], resolve(script), ...rest];
const session = new inspector.Session();
session.connect();
const re = new RegExp(trigger);
let started = false;
const write = process.stderr.write.bind(process.stderr);
process.stderr.write = (chunk, ...a) => {
  if (!started && re.test(String(chunk))) {
    started = true;
    session.post('Profiler.enable', () => session.post('Profiler.setSamplingInterval', { interval: 500 }, () => session.post('Profiler.start')));
  }
  return write(chunk, ...a);
};
process.on('exit', () => {
  if (!started) return;
  // the main-thread session answers synchronously, so this works inside 'exit'
  session.post('Profiler.stop', (err, res) => {
    if (!err && res?.profile) writeFileSync(out, JSON.stringify(res.profile));
  });
});
await import(pathToFileURL(resolve(script)).href);
