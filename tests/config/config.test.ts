import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CatalogError, loadTopics, parseFeeds, parseTopics } from '../../src/config/catalog.ts';
import { ConfigError, hideUrlPasswords, loadConfig, renderConfigTable } from '../../src/config/load.ts';
import { OPTIONS } from '../../src/config/options.ts';

const problemsOf = (env: Record<string, string>) => {
  try {
    loadConfig(env, () => {
      throw new Error('ENOENT: no such file');
    });
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected a ConfigError');
};

describe('config', () => {
  it('gives every option its default when the environment is empty', () => {
    const c = loadConfig({});
    expect(c.redisPrefix).toBe('herald');
    expect(c.port).toBe(8080);
    expect(c.redisUrl).toBeUndefined();
    expect(c.schedulers).toBe(true);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it.each([
    [{ HERALD_PORT: 'eighty' }, 'HERALD_PORT', 'port number'],
    [{ HERALD_PORT: '70000' }, 'HERALD_PORT', 'port number'],
    [{ REDIS_URL: 'http://localhost:6379' }, 'REDIS_URL', 'redis://'],
    [{ HERALD_REDIS_PREFIX: 'has space' }, 'HERALD_REDIS_PREFIX', 'letters'],
    [{ SMTP_URL: 'mail.example.org' }, 'SMTP_URL', 'smtp://'],
    [{ HERALD_SCHEDULERS: 'maybe' }, 'HERALD_SCHEDULERS', 'true or false'],
    [{ LOG_LEVEL: 'loud' }, 'LOG_LEVEL', 'one of'],
    [{ HERALD_SIGNING_KEY: 'short' }, 'HERALD_SIGNING_KEY', 'openssl rand'],
  ])('refuses %o naming the variable and the fix', (env, variable, fix) => {
    const problems = problemsOf(env);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(`${variable}=`);
    expect(problems[0]).toContain('Fix:');
    expect(problems[0]).toContain(fix);
  });

  it('reports every problem at once, and never prints a secret value', () => {
    const problems = problemsOf({ HERALD_PORT: 'x', HERALD_SIGNING_KEY: 'tiny-secret' });
    expect(problems).toHaveLength(2);
    expect(problems.join('\n')).not.toContain('tiny-secret');
    expect(problems.join('\n')).toContain('(secret value hidden)');
  });

  it('hides the passwords in connection URLs it quotes, and says which schemes it wants', () => {
    const problems = problemsOf({ REDIS_URL: 'redis://:hunter2-redis@db1:6379,db2:6379', SMTP_URL: 'smpt://alerts:hunter2-smtp@mail.example.org:587' }).join('\n');
    expect(problems).not.toContain('hunter2');
    expect(problems).toContain('REDIS_URL="redis://:***@db1:6379,db2:6379" is invalid');
    expect(problems).toContain('SMTP_URL="smpt://alerts:***@mail.example.org:587" is invalid: must be a URL starting with smtp:// or smtps://');
    expect(hideUrlPasswords('a redis://u:p@h:1,redis://:q@h:2 and smtp://user@h')).toBe('a redis://u:***@h:1,redis://:***@h:2 and smtp://user@h');
  });

  it('wants numbers in decimal digits: hexadecimal, exponents and binary are refused, decimals and spaces kept', () => {
    for (const [env, value] of [['HERALD_PORT', '0x1F90'], ['HERALD_JOB_LOCK_SECONDS', '3e1'], ['HERALD_PUSH_CONCURRENCY', '0b100'], ['HERALD_PORT', '80 80']]) {
      const problems = problemsOf({ [env!]: value! });
      expect(problems).toHaveLength(1);
      expect(problems[0]).toBe(`${env}=${JSON.stringify(value)} is invalid: expected a number written in decimal digits. Fix: ${OPTIONS.find((o) => o.env === env)!.fix}`);
    }
    const config = loadConfig({ HERALD_PORT: ' 8080 ', HERALD_JOB_LOCK_SECONDS: '45', HERALD_QUERY_MAX_MATCH_RATIO: '.25' });
    expect([config.port, config.jobLockSeconds, config.queryMaxMatchRatio]).toEqual([8080, 45, 0.25]);
  });

  it('takes a value of only spaces as unset: the default, not the number 0', () => {
    const config = loadConfig({ HERALD_PORT: ' ', HERALD_PUSH_BURST_WINDOW_SECONDS: '  ' });
    expect(config.port).toBe(loadConfig({}).port);
    expect(config.pushBurstWindowSeconds).toBeGreaterThan(0);
    expect(config.pushBurstWindowSeconds).toBe(loadConfig({}).pushBurstWindowSeconds);
  });

  it('reads every secret from its *_FILE twin, trimmed', () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-cfg-'));
    const file = join(dir, 'smtp-password');
    writeFileSync(file, 's3cret-pass\n');
    expect(loadConfig({ SMTP_PASSWORD_FILE: file }).smtpPassword).toBe('s3cret-pass');
    const secrets = OPTIONS.filter((o) => 'secret' in o && o.secret).map((o) => o.env);
    expect(secrets).toEqual(expect.arrayContaining(['VAPID_PRIVATE_KEY', 'SMTP_PASSWORD', 'HERALD_SIGNING_KEY']));
  });

  it('refuses a secret given both directly and by file, and a file that cannot be read', () => {
    expect(problemsOf({ SMTP_PASSWORD: 'a', SMTP_PASSWORD_FILE: '/x' })[0]).toContain('both set');
    expect(problemsOf({ SMTP_PASSWORD_FILE: '/nonexistent/pw' })[0]).toContain('SMTP_PASSWORD_FILE=/nonexistent/pw cannot be read');
  });

  it('wants both VAPID keys or neither', () => {
    const problems = problemsOf({ VAPID_PUBLIC_KEY: 'B'.repeat(87) });
    expect(problems[0]).toContain('VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY must be set together');
  });

  it('renders a table with a row for every option', () => {
    const table = renderConfigTable();
    for (const o of OPTIONS) expect(table).toContain(`\`${o.env}\``);
  });
});

describe('catalog files', () => {
  it('loads the shipped topic catalog', () => {
    const topics = loadTopics('config/topics.json');
    expect(topics.map((t) => t.id)).toEqual(expect.arrayContaining(['world', 'india', 'japan', 'cricket', 'sports']));
    expect(topics.find((t) => t.id === 'cricket')?.parent).toBe('sports');
  });

  it('names the file and the field that is wrong', () => {
    expect(() => parseTopics({ topics: [{ id: 'Bad Id', name: 'x', group: 'g', query: 'x' }] }, 'my-topics.json')).toThrow(
      /my-topics\.json: topics\.0\.id: lower-case letters/,
    );
    expect(() => parseTopics({ topics: [{ id: 'a', name: 'A', group: 'g', query: 'a', parent: 'nope' }] })).toThrow(/parent "nope"/);
    expect(() => parseFeeds({ feeds: [{ id: 'a', url: 'ftp://x' }] }, 'feeds.json')).toThrow(CatalogError);
    expect(() => parseFeeds({ feeds: [{ id: 'a', url: 'https://x.test/a' }, { id: 'a', url: 'https://x.test/b' }] })).toThrow(/appears twice/);
  });
});

describe('README', () => {
  it('carries the configuration table generated from the option declarations', async () => {
    const { readFileSync } = await import('node:fs');
    const readme = readFileSync('README.md', 'utf8');
    const section = /<!-- config-table:start -->\n([\s\S]*?)\n<!-- config-table:end -->/.exec(readme)?.[1];
    expect(section, 'README.md lacks the config-table markers').toBeDefined();
    expect(section, 'README.md config table is stale: run `node src/cli/herald.mjs config readme`').toBe(renderConfigTable());
  });
});
