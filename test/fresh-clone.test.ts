// A fresh clone builds everything: no build state is tracked, so no mtime a checkout or
// `git archive` gives the files can make `make build` skip the Debian package check or
// `npm ci`. Runs `make -n` (a dry run: nothing is installed) on the tree as git has it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { run } from './helpers.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
// OSPREY_CLONE_REV=<commit> checks that commit's tree instead of the working tree's
const REV = process.env.OSPREY_CLONE_REV;

/** make without the settings of a make that may be running this test */
function make(cwd: string, args: string[]) {
  const env: Record<string, string | undefined> = { MAKEFLAGS: undefined, MAKELEVEL: undefined, MFLAGS: undefined, MAKEOVERRIDES: undefined };
  return run('make', ['-C', cwd, ...args], { env, timeoutMs: 60_000 });
}

function filesUnder(dir: string, rel = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(dir, rel), { withFileTypes: true })) {
    const p = rel ? `${rel}/${e.name}` : e.name;
    if (e.isDirectory()) out.push(...filesUnder(dir, p));
    else out.push(p);
  }
  return out;
}

const isGit = existsSync(join(ROOT, '.git'));

describe('a fresh clone', { timeout: 120_000, skip: isGit ? false : 'not a git checkout' }, () => {
  let tmp = '';
  let tree = '';
  let files: string[] = [];

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'osprey-clone-'));
    tree = join(tmp, 'tree');
    mkdirSync(tree);
    // the tracked files as they are in the working tree (what the next commit holds, edits
    // and removals included), through a scratch copy of the index
    let rev = REV;
    if (!rev) {
      const gitIndex = await run('git', ['-C', ROOT, 'rev-parse', '--path-format=absolute', '--git-path', 'index']);
      assert.equal(gitIndex.code, 0, gitIndex.stderr);
      const env = { GIT_INDEX_FILE: join(tmp, 'index') };
      copyFileSync(gitIndex.stdout.trim(), env.GIT_INDEX_FILE);
      const add = await run('git', ['-C', ROOT, 'add', '-u'], { env });
      assert.equal(add.code, 0, add.stderr);
      const tree = await run('git', ['-C', ROOT, 'write-tree'], { env });
      assert.equal(tree.code, 0, tree.stderr);
      rev = tree.stdout.trim();
    }
    const tar = join(tmp, 'tree.tar');
    const a = await run('git', ['-C', ROOT, 'archive', '--format=tar', '-o', tar, rev]);
    assert.equal(a.code, 0, a.stderr);
    const x = await run('tar', ['-xf', tar, '-C', tree]);
    assert.equal(x.code, 0, x.stderr);
    files = filesUnder(tree);
  });
  after(() => {
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  /** sets the mtime of the given files to the Makefile's plus `offsetSec` */
  function shift(paths: string[], offsetSec: number): void {
    const base = statSync(join(tree, 'Makefile')).mtimeMs / 1000;
    for (const p of paths) utimesSync(join(tree, p), base + offsetSec, base + offsetSec);
  }

  async function assertFullBuild(what: string): Promise<void> {
    const r = await make(tree, ['-n', 'build']);
    assert.equal(r.code, 0, `${what}: make -n build failed: ${r.stderr}`);
    assert.match(r.stdout, /dpkg-query -W/, `${what}: make build would not check the Debian packages:\n${r.stdout}`);
    assert.match(r.stdout, /^npm ci\b/m, `${what}: make build would not run npm ci:\n${r.stdout}`);
    assert.match(r.stdout, /\btsc -p tsconfig\.json\b/, `${what}: make build would not compile TypeScript:\n${r.stdout}`);
  }

  it('tracks no build state (.make/ is ignored)', async () => {
    assert.deepEqual(
      files.filter((f) => f.startsWith('.make/')),
      [],
    );
    const ignored = await run('git', ['-C', ROOT, 'check-ignore', '-q', '--no-index', '.make/apt']);
    assert.equal(ignored.code, 0, '.make/ is not in .gitignore');
  });

  it('make build runs the package check, npm ci and tsc whatever the mtimes', async () => {
    await assertFullBuild('every file with the same mtime (git archive)');
    // stamps of any kind (older Makefiles tracked .make/*): older, then newer than the Makefile
    const stamps = files.filter((f) => f.startsWith('.make/'));
    shift(stamps, -3600);
    await assertFullBuild('stamps older than the Makefile');
    shift(stamps, +3600);
    await assertFullBuild('stamps newer than the Makefile');
    // every other file older, then newer than the Makefile
    const others = files.filter((f) => f !== 'Makefile' && !stamps.includes(f));
    shift(others, -3600);
    await assertFullBuild('sources older than the Makefile');
    shift(others, +3600);
    await assertFullBuild('sources newer than the Makefile');
  });

  it('make clean removes no tracked file', async () => {
    const r = await make(tree, ['clean']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(
      files.filter((f) => !existsSync(join(tree, f))),
      [],
    );
  });
});
