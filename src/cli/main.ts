import { readFileSync, writeFileSync } from 'node:fs';
import { runClassifyCommand } from '../classify/cli.ts';
import { ConfigError, hideUrlPasswords, loadConfig, renderConfigTable, withConfigTable } from '../config/load.ts';
import type { Config } from '../config/options.ts';
import { createRedis, redisHealth } from '../store/redis.ts';
import { feedsCommand } from '../ingest/cli.ts';
import { runTraceCommand } from '../ops/trace-cli.ts';
import { ROLES } from '../runtime/herald.ts';
import { parseRole, runRoles } from '../runtime/process.ts';

const USAGE = `Usage: herald <command>

  start                 run the web server and every worker in this process
  worker <role>         run one role: ${ROLES.join(', ')}
  health                exit 0 when Redis (REDIS_URL) answers: a container health check
  config table          print the configuration table (Markdown)
  config readme         rewrite README.md's configuration table from the declarations
  classify FILE...      classify the stories of feed files: [--json] [--topics FILE] [--query QUERY]
  feeds check|add|list|remove
                        check feed files offline; add, list (with health) or remove polled feeds
  trace --subscriber X --story Y [--json]
                        why a reader got (or did not get) a story: matches, alerts, each channel's answer
`;

/**
 * A one-shot command piped into a reader that stops early (`herald feeds check --json dir | head -1`): the next write
 * fails with EPIPE, which, unhandled, crashed the command with a stack trace. The reader has what it wanted, so the
 * command ends quietly, with 0, as when it ran. Not for the long-running roles: their logs are not the command's output.
 */
let quietOnStdoutClose = false;
function endQuietlyWhenStdoutCloses() {
  // Once per process: main runs many times in one process in the tests, and a listener per run piles up.
  if (quietOnStdoutClose) return;
  quietOnStdoutClose = true;
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE') process.exit(0);
    throw err;
  });
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command !== 'start' && command !== 'worker') endQuietlyWhenStdoutCloses();
  switch (command) {
    case 'start':
      await runRoles(ROLES);
      return -1;
    case 'worker': {
      const role = parseRole(rest[0]);
      if (!role) {
        process.stderr.write(`herald worker: unknown role "${rest[0] ?? ''}"; pick one of ${ROLES.join(', ')}\n`);
        return 2;
      }
      await runRoles([role]);
      return -1;
    }
    case 'health': {
      // For container health checks of worker roles: is this process's Redis reachable with this config?
      let config: Config;
      try {
        config = loadConfig();
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        process.stderr.write(`herald health: ${err.message}\n`);
        return 2;
      }
      const target = config.redisClusterNodes ?? config.redisUrl;
      if (!target) {
        process.stderr.write('herald health: REDIS_URL is not set\n');
        return 1;
      }
      const redis = createRedis(target, { name: 'herald-health' });
      redis.on('error', () => undefined);
      try {
        // On a cluster, healthy means every slot has a reachable master.
        await Promise.race([redisHealth(redis, 2500), new Promise((_, rej) => setTimeout(() => rej(new Error('no answer within 3 s')), 3000))]);
        process.stdout.write('ok\n');
        return 0;
      } catch (err) {
        process.stderr.write(`herald health: Redis at ${hideUrlPasswords(target)} does not answer: ${(err as Error).message}\n`);
        return 1;
      } finally {
        redis.disconnect();
      }
    }
    case 'classify':
      return runClassifyCommand(rest, {
        out: (s) => process.stdout.write(s),
        err: (s) => process.stderr.write(s),
        env: process.env,
        now: () => Date.now(),
      });
    case 'feeds':
      return feedsCommand(rest, { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t), env: process.env });
    case 'trace':
      return runTraceCommand(rest, { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s), env: process.env, now: () => Date.now() });
    case 'config':
      if (rest[0] === 'table') {
        process.stdout.write(`${renderConfigTable()}\n`);
        return 0;
      }
      if (rest[0] === 'readme') {
        writeFileSync('README.md', withConfigTable(readFileSync('README.md', 'utf8')));
        return 0;
      }
      process.stderr.write(USAGE);
      return 2;
    case undefined:
    case '-h':
    case '--help':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`herald: unknown command "${command}"\n${USAGE}`);
      return 2;
  }
}
