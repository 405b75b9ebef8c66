// Small helpers shared by the commands: argument parsing with help, errors a
// user can act on, and output that never loses lines on exit.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { KernelError } from '../kernel/index.js';

export class UsageError extends Error {
  /** the command whose --help to point at */
  command: string | undefined;
  constructor(message: string, command?: string) {
    super(message);
    this.name = 'UsageError';
    this.command = command;
  }
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  /** option help lines, already formatted */
  help: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** how many positional arguments the command takes (default 0) */
  positionals?: number;
  run(args: { values: Record<string, unknown>; positionals: string[] }): Promise<number>;
}

export function parse(cmd: Command, argv: string[]): { values: Record<string, unknown>; positionals: string[] } {
  const options: NonNullable<ParseArgsConfig['options']> = { ...cmd.options, help: { type: 'boolean', short: 'h' } };
  // `--limit -1`: a negative number is the option's value (then checked), not an unknown flag
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = argv[i + 1];
    const opt = a.startsWith('--') && !a.includes('=') ? options[a.slice(2)] : undefined;
    if (opt?.type === 'string' && next !== undefined && /^-\d/.test(next)) {
      args.push(`${a}=${next}`);
      i++;
    } else {
      args.push(a);
    }
  }
  try {
    const r = parseArgs({ args, options, allowPositionals: true, strict: true });
    const extra = r.positionals[cmd.positionals ?? 0];
    if (extra !== undefined && !r.values.help) throw new UsageError(`unexpected argument ${JSON.stringify(extra)}`, cmd.name);
    return { values: r.values, positionals: r.positionals };
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(argsMessage(err as Error & { code?: string }, argv), cmd.name);
  }
}

/** node:util parseArgs' messages, in one line and in osprey's words */
function argsMessage(err: Error & { code?: string }, argv: string[]): string {
  const quoted = /'(-[^' ]+)/.exec(err.message)?.[1];
  switch (err.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${quoted ?? err.message}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/argument missing/.test(err.message)) return `${quoted ?? 'an option'} needs a value`;
      if (/ambiguous/.test(err.message)) return `${quoted ?? 'an option'} needs a value; to give one that starts with "-", write ${quoted ?? '--option'}=-VALUE`;
      if (/does not take an argument/.test(err.message)) return `${quoted ?? 'a flag'} takes no value`;
      break;
    case 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL':
      return `unexpected argument ${JSON.stringify(argv.find((a) => !a.startsWith('-')) ?? '')}`;
  }
  return err.message.split('\n')[0]!.replace(/\. To specify.*$/, '');
}

export function commandHelp(cmd: Command): string {
  return `Usage: ${cmd.usage}\n\n${cmd.summary}\n${cmd.help ? `\nOptions:\n${cmd.help}\n` : ''}  -h, --help            show this help\n`;
}

/** Go-style duration ("30s", "5m", "1h30m", "250ms") to nanoseconds */
export function parseDuration(s: string): bigint {
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  const unit: Record<string, number> = { ns: 1, us: 1e3, µs: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };
  let total = 0;
  let m: RegExpExecArray | null;
  let pos = 0;
  while ((m = re.exec(s)) !== null) {
    total += Number(m[1]) * unit[m[2]!]!;
    pos = re.lastIndex;
  }
  if (pos !== s.length || s.length === 0) throw new UsageError(`invalid duration "${s}" (examples: 30s, 5m, 1h)`);
  return BigInt(Math.round(total));
}

/** a decimal integer option (digits only: not 1e3, 0x10 or 1.0) */
export function intOption(v: unknown, name: string, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
  if (v === undefined) return undefined;
  const s = typeof v === 'string' ? v.trim() : JSON.stringify(v);
  const n = /^-?\d+$/.test(s) ? Number(s) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be an integer ${max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`}, got "${s}"`);
  }
  return n;
}

/** the one place errors become what a user reads: a line of what, a line of how to fix */
export function reportError(err: unknown): number {
  if (err instanceof UsageError) {
    process.stderr.write(`osprey: ${err.message}\nRun 'osprey ${err.command ? `${err.command} ` : ''}--help' for usage.\n`);
    return 2;
  }
  if (err instanceof KernelError) {
    process.stderr.write(`osprey: ${err.message}\n  fix: ${err.hint}\n`);
    return 1;
  }
  const e = err as Error & { hint?: string };
  process.stderr.write(`osprey: ${e?.message ?? String(err)}\n${e?.hint ? `  fix: ${e.hint}\n` : ''}`);
  if (process.env.OSPREY_DEBUG) process.stderr.write(`${e?.stack ?? ''}\n`);
  return 1;
}

/** resolves on the first SIGINT/SIGTERM */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals) => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(sig);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

/** resolves once everything written to stdout so far is flushed */
export function flushStdout(): Promise<void> {
  return new Promise((resolve) => process.stdout.write('', () => resolve()));
}
