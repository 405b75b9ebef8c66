// osprey: the command line. `bin/osprey` execs node on this file.
import { commandHelp, parse, reportError, UsageError, type Command } from './cli.js';
import { doctorCommand } from './doctor.js';
import { eventsCommand } from './events.js';
import { manifestsCommand } from './manifests.js';
import { graphCommand, queryCommand, servicesCommand, traceCommand } from './read-commands.js';
import { statusCommand } from './status.js';
import { upCommand } from './up.js';

const commands: Command[] = [upCommand, queryCommand, traceCommand, servicesCommand, graphCommand, statusCommand, eventsCommand, doctorCommand, manifestsCommand];

function mainHelp(): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'osprey: trace every request of every process with eBPF, no code changes.',
    '',
    'Usage: osprey <command> [options]',
    '',
    'Commands:',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary.split('\n')[0]}`),
    '',
    "Run 'osprey <command> --help' for a command's options.",
    '',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '-h' || name === '--help' || name === 'help') {
    process.stdout.write(mainHelp());
    return name ? 0 : 2;
  }
  if (name === '--version' || name === 'version') {
    process.stdout.write('osprey 0.1.0\n');
    return 0;
  }
  const cmd = commands.find((c) => c.name === name);
  if (!cmd) throw new UsageError(`unknown command "${name}"`);
  const args = parse(cmd, rest);
  if (args.values.help) {
    process.stdout.write(commandHelp(cmd));
    return 0;
  }
  try {
    return await cmd.run(args);
  } catch (err) {
    if (err instanceof UsageError) err.command ??= cmd.name;
    throw err;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.exitCode = reportError(err);
  },
);
