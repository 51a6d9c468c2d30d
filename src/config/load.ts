import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { OPTIONS, type Config, type OptionSpec } from './options.ts';

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Herald cannot start: invalid configuration\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

type ReadFile = (path: string) => string;

/** Raw string value of one option: the variable, else its `_FILE` twin for secrets, else the default. */
function rawValue(
  spec: OptionSpec,
  env: Readonly<Record<string, string | undefined>>,
  readFile: ReadFile,
): { value?: string; problem?: string } {
  const direct = env[spec.env];
  const filePath = spec.secret ? env[`${spec.env}_FILE`] : undefined;
  // A value of only spaces is unset, as an empty one is: read as a number it would be 0 (port 0, bundling off).
  const given = direct !== undefined && direct.trim() !== '';
  if (given && filePath) {
    return { problem: `${spec.env} and ${spec.env}_FILE are both set: keep one of them` };
  }
  if (filePath) {
    try {
      // Secret files usually end with a newline written by the editor or `echo`.
      return { value: readFile(filePath).trim() };
    } catch (err) {
      return { problem: `${spec.env}_FILE=${filePath} cannot be read (${(err as Error).message}): fix the path or its permissions` };
    }
  }
  if (given) return { value: direct };
  return spec.default === undefined ? {} : { value: spec.default };
}

/**
 * The text with the password of every URL in it (redis://:pw@host, smtp://user:pw@host) replaced by "***":
 * connection URLs carry credentials, and error messages and CLI output end up in logs and terminals.
 */
export function hideUrlPasswords(text: string): string {
  return text.replace(/(\/\/[^/@\s,:]*:)[^/@\s,]+@/g, '$1***@');
}

/** A number as an operator writes one: decimal digits, optionally signed and with a fractional part. */
const DECIMAL = /^\s*[+-]?(\d+(\.\d*)?|\.\d+)\s*$/;
const isCoercedNumber = (schema: z.ZodType) => schema instanceof z.ZodNumber && schema.def.coerce === true;

/**
 * Reads every declared option from `env`, validates it and returns a frozen Config.
 * All problems are collected so the operator fixes them in one go.
 */
export function loadConfig(
  env: Readonly<Record<string, string | undefined>> = process.env,
  readFile: ReadFile = (p) => readFileSync(p, 'utf8'),
): Config {
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const spec of OPTIONS as readonly OptionSpec[]) {
    const { value, problem } = rawValue(spec, env, readFile);
    if (problem) {
      problems.push(problem);
      continue;
    }
    if (typeof value === 'string' && isCoercedNumber(spec.schema) && !DECIMAL.test(value)) {
      // Number() would take "0x1F", "1e3" or "0b11" as numbers: in a config file they are typos, not intent.
      problems.push(`${spec.env}=${JSON.stringify(value)} is invalid: expected a number written in decimal digits. Fix: ${spec.fix}`);
      continue;
    }
    const parsed = spec.schema.safeParse(value);
    if (parsed.success) {
      out[spec.key] = parsed.data;
    } else {
      const shown = spec.secret ? '(secret value hidden)' : JSON.stringify(typeof value === 'string' ? hideUrlPasswords(value) : value);
      const why = parsed.error.issues.map((i) => i.message).join('; ');
      problems.push(`${spec.env}=${shown} is invalid: ${why}. Fix: ${spec.fix}`);
    }
  }
  const vapidPair = [out.vapidPublicKey, out.vapidPrivateKey].filter((v) => v !== undefined).length;
  if (vapidPair === 1) {
    problems.push('VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY must be set together. Fix: set both, or unset both to generate a pair');
  }
  const dkim = [out.dkimDomain, out.dkimSelector, out.dkimPrivateKey].filter((v) => v !== undefined).length;
  if (dkim !== 0 && dkim !== 3) {
    problems.push('HERALD_DKIM_DOMAIN, HERALD_DKIM_SELECTOR and HERALD_DKIM_PRIVATE_KEY go together. Fix: set all three to sign email, or unset all three');
  }
  const shards = out.pushShards as number | undefined;
  const outside = ((out.pushShardsConsumed as number[] | undefined) ?? []).filter((n) => shards !== undefined && n >= shards);
  if (outside.length > 0) {
    problems.push(`HERALD_PUSH_SHARDS_CONSUMED lists shard ${outside.join(', ')}, but HERALD_PUSH_SHARDS=${shards} gives shards 0-${shards! - 1}. Fix: list shards below ${shards}, or raise HERALD_PUSH_SHARDS`);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return Object.freeze(out) as Config;
}

/** Markdown table of every option, for README (kept in step by a test). */
export function renderConfigTable(): string {
  const rows = (OPTIONS as readonly OptionSpec[]).map((o) => {
    const def = o.default === undefined ? '' : `\`${o.default}\``;
    const name = o.secret ? `\`${o.env}\` (or \`${o.env}_FILE\`)` : `\`${o.env}\``;
    return `| ${name} | ${def} | ${o.secret ? 'yes' : 'no'} | ${o.description.replace(/\|/g, '\\|')} |`;
  });
  return ['| Variable | Default | Secret | What it does |', '| --- | --- | --- | --- |', ...rows].join('\n');
}

export function publicBaseUrl(config: Config): string {
  return (config.publicUrl ?? `http://localhost:${config.port}`).replace(/\/+$/, '');
}

const TABLE_START = '<!-- config-table:start -->';
const TABLE_END = '<!-- config-table:end -->';

/** README text with its configuration table replaced by the current one. */
export function withConfigTable(readme: string): string {
  const start = readme.indexOf(TABLE_START);
  const end = readme.indexOf(TABLE_END);
  if (start < 0 || end < start) throw new Error(`README lacks the ${TABLE_START} ... ${TABLE_END} markers`);
  return `${readme.slice(0, start + TABLE_START.length)}\n${renderConfigTable()}\n${readme.slice(end)}`;
}
