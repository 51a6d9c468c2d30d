import { renderConfigTable } from '../config/load.ts';
import { feedsCommand } from '../ingest/cli.ts';
import { ROLES } from '../runtime/herald.ts';
import { parseRole, runRoles } from '../runtime/process.ts';

const USAGE = `Usage: herald <command>

  start                 run the web server and every worker in this process
  worker <role>         run one role: ${ROLES.join(', ')}
  config table          print the configuration table (Markdown)
  feeds check|add|list|remove
                        check feed files offline; add, list (with health) or remove polled feeds
`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
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
    case 'feeds':
      return feedsCommand(rest, { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t), env: process.env });
    case 'config':
      if (rest[0] === 'table') {
        process.stdout.write(`${renderConfigTable()}\n`);
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
