// Small helpers shared by the commands: argument parsing with help, errors a
// user can act on, and output that never loses lines on exit.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { KernelError } from '../kernel/index.js';

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  /** option help lines, already formatted */
  help: string;
  options: NonNullable<ParseArgsConfig['options']>;
  run(args: { values: Record<string, unknown>; positionals: string[] }): Promise<number>;
}

export function parse(cmd: Command, argv: string[]): { values: Record<string, unknown>; positionals: string[] } {
  try {
    const r = parseArgs({ args: argv, options: { ...cmd.options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true });
    return { values: r.values, positionals: r.positionals };
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify.*$/s, ''));
  }
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

export function intOption(v: unknown, name: string, min = 0): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}, got "${typeof v === "string" ? v : JSON.stringify(v)}"`);
  return n;
}

/** the one place errors become what a user reads: a line of what, a line of how to fix */
export function reportError(err: unknown): number {
  if (err instanceof UsageError) {
    process.stderr.write(`osprey: ${err.message}\nRun 'osprey --help' for usage.\n`);
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
