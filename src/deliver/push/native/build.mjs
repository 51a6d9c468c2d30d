// Builds the native P-256 key agreement (p256.c, see key-agreement.ts) with node-gyp, as npm install's own step.
// Never fails the install: without a C compiler, Python or Node's headers, Herald encrypts pushes with Node's
// ECDH instead, and says so here and when a dispatcher starts.
import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = dirname(fileURLToPath(import.meta.url));
// Node's own headers where they sit beside it (official builds, distribution packages, the node images): node-gyp
// would otherwise download them, which machines without internet cannot.
const prefix = dirname(dirname(process.execPath));
const nodedir = !process.env.npm_config_nodedir && existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
// npm names its own node-gyp for lifecycle scripts; run by hand, the one npm ships beside Node, else one on PATH.
const gyp = [process.env.npm_config_node_gyp, join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js')].find((p) => p && existsSync(p));
const [cmd, args] = gyp ? [process.execPath, [gyp, 'rebuild', ...nodedir]] : ['node-gyp', ['rebuild', ...nodedir]];
const res = spawnSync(cmd, args, { cwd: dir, encoding: 'utf8', env: process.env });
const built = join(dir, 'build', 'Release', 'p256.node');
if (res.status === 0 && existsSync(built)) {
  console.log('herald: built the native P-256 key agreement for push encryption');
} else {
  const errors = `${res.stderr ?? ''}\n${res.stdout ?? ''}`.split('\n').filter((l) => /error|not found|ERR!/i.test(l)).slice(0, 3);
  const why = res.error?.message ?? (errors.join(' | ') || `exit ${res.status}`);
  // A half-built addon is not left behind for the loader to find.
  rmSync(join(dir, 'build'), { recursive: true, force: true });
  console.warn(`herald: the native P-256 key agreement was not built (${why}); push encryption will use Node's ECDH, about half as fast. Install a C compiler, make and python3, then run npm run build:native.`);
}
