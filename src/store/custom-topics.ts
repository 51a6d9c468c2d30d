import { randomBytes } from 'node:crypto';
import { defineScript, runCommands, type Command, type RedisClient } from './redis.ts';

/**
 * Owns subscribers' own alerts (custom topics). The records live with their owner ({s:<id>}); an index of
 * every custom topic, a version counter and a change log share the tag {ct}, so each change is announced
 * atomically in one slot and every classifier process can catch up with only what changed.
 */
export interface CustomTopic {
  id: string;
  ownerId: string;
  name: string;
  query: string;
  createdAt: number;
  updatedAt: number;
}

export const customTopicsKey = (prefix: string, ownerId: string) => `${prefix}:{s:${ownerId}}:custom-topics`;
const indexKeys = (prefix: string) => ({
  version: `${prefix}:{ct}:version`,
  changes: `${prefix}:{ct}:changes`,
  all: `${prefix}:{ct}:all`,
  floor: `${prefix}:{ct}:floor`,
});

/** Catalog ids never contain ".", so an own alert can never shadow a catalog topic. */
export const CUSTOM_TOPIC_PREFIX = 'alert.';
export const isCustomTopicId = (id: string) => id.startsWith(CUSTOM_TOPIC_PREFIX);
export const newCustomTopicId = () => `${CUSTOM_TOPIC_PREFIX}${randomBytes(6).toString('hex')}`;

/** How many changes the log keeps; a process further behind than this reloads everything. */
export const CHANGE_LOG_LENGTH = 100_000;

/** KEYS: version, changes, all, floor. ARGV: id, owner ('' = deleted), log length. */
const ANNOUNCE = `
local v = redis.call('INCR', KEYS[1])
if ARGV[2] == '' then redis.call('HDEL', KEYS[3], ARGV[1]) else redis.call('HSET', KEYS[3], ARGV[1], ARGV[2]) end
redis.call('ZADD', KEYS[2], v, ARGV[1])
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if extra > 0 then
  local old = redis.call('ZRANGE', KEYS[2], extra - 1, extra - 1, 'WITHSCORES')
  redis.call('SET', KEYS[4], old[2])
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, extra - 1)
end
return v`;

/** KEYS: version, changes, floor. ARGV: the caller's version. Returns {version, floor, id1, id2, ...}. */
const CHANGES_SINCE = `
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = tonumber(redis.call('GET', KEYS[3]) or '0')
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. ARGV[1], '+inf')
local out = {v, floor}
for i = 1, #ids do out[#out + 1] = ids[i] end
return out`;

/** KEYS: the owner's hash. ARGV: id, record, most allowed. Checks and writes in one step, so two tabs cannot both pass the check. */
const CREATE = `
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1`;

export class CustomTopicLimitError extends Error {
  override name = 'CustomTopicLimitError';
}

const limitError = (max: number) => new CustomTopicLimitError(`you already have ${max} alerts, the most allowed: delete one first`);

const parse = (json: string | null | undefined): CustomTopic | null => (json ? (JSON.parse(json) as CustomTopic) : null);

export function createCustomTopicStore(redis: RedisClient, prefix: string, opts: { changeLogLength?: number } = {}) {
  const announceScript = defineScript(redis, 'heraldCustomAnnounce', 4, ANNOUNCE);
  const createScript = defineScript(redis, 'heraldCustomCreate', 1, CREATE);
  const changesSinceScript = defineScript(redis, 'heraldCustomChanges', 3, CHANGES_SINCE);
  const idx = indexKeys(prefix);
  const logLength = opts.changeLogLength ?? CHANGE_LOG_LENGTH;
  const announce = (id: string, ownerId: string) => announceScript(idx.version, idx.changes, idx.all, idx.floor, id, ownerId, String(logLength)) as Promise<number>;

  return {
    /** Throws CustomTopicLimitError when the owner already has `maxPerOwner` alerts: one HLEN, checked before costlier work. */
    async checkRoom(ownerId: string, maxPerOwner: number): Promise<void> {
      if ((await redis.hlen(customTopicsKey(prefix, ownerId))) >= maxPerOwner) throw limitError(maxPerOwner);
    },

    /** Stores a new alert for the owner, unless they already have `maxPerOwner`. */
    async create(ownerId: string, input: { name: string; query: string }, now: number, maxPerOwner: number): Promise<CustomTopic> {
      const topic: CustomTopic = { id: newCustomTopicId(), ownerId, name: input.name, query: input.query, createdAt: now, updatedAt: now };
      // At the limit nothing is announced: a refused create leaves no trace in the change log.
      await this.checkRoom(ownerId, maxPerOwner);
      // The record ({s:<id>}) and the index ({ct}) are in different slots, so no one script writes both. Filed in
      // the index first (processes skip an id without a record) and announced again after: a crash in between
      // leaves at worst an index entry without a record, never an alert its owner sees that no classifier matches.
      await announce(topic.id, ownerId);
      const created = (await createScript(customTopicsKey(prefix, ownerId), topic.id, JSON.stringify(topic), String(maxPerOwner))) as number;
      if (created === 0) {
        // Two tabs raced past the check for the last place: this one withdraws its entry.
        await announce(topic.id, '');
        throw limitError(maxPerOwner);
      }
      await announce(topic.id, ownerId);
      return topic;
    },

    async list(ownerId: string): Promise<CustomTopic[]> {
      const raw = await redis.hgetall(customTopicsKey(prefix, ownerId));
      return Object.values(raw)
        .map((j) => parse(j)!)
        .sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
    },

    async get(ownerId: string, id: string): Promise<CustomTopic | null> {
      return parse(await redis.hget(customTopicsKey(prefix, ownerId), id));
    },

    /** Renames the alert or changes its query; null when the owner has no such alert. */
    async update(ownerId: string, id: string, patch: { name?: string; query?: string }, now: number): Promise<CustomTopic | null> {
      const current = await this.get(ownerId, id);
      if (!current) return null;
      const next: CustomTopic = { ...current, ...patch, updatedAt: now };
      await redis.hset(customTopicsKey(prefix, ownerId), id, JSON.stringify(next));
      await announce(id, ownerId);
      return next;
    },

    async remove(ownerId: string, id: string): Promise<boolean> {
      const removed = await redis.hdel(customTopicsKey(prefix, ownerId), id);
      if (removed === 0) return false;
      await announce(id, '');
      return true;
    },

    /** Removes every alert of the owner (a deleted account), each announced so no classifier keeps matching it; returns their ids. */
    async removeAll(ownerId: string): Promise<string[]> {
      const ids = await redis.hkeys(customTopicsKey(prefix, ownerId));
      for (const id of ids) await this.remove(ownerId, id);
      await redis.del(customTopicsKey(prefix, ownerId));
      return ids;
    },

    async version(): Promise<number> {
      return Number((await redis.get(idx.version)) ?? 0);
    },

    /**
     * What changed after `version`: the ids to reload (a deleted one is simply absent from getMany), or
     * 'reload' when the log no longer reaches that far back.
     */
    async changesSince(version: number): Promise<{ version: number; ids: string[] } | { version: number; reload: true }> {
      const [v, floor, ...ids] = (await changesSinceScript(idx.version, idx.changes, idx.floor, String(version))) as [number, number, ...string[]];
      if (version < floor) return { version: v, reload: true };
      return { version: v, ids };
    },

    /** The current records of these alerts; deleted ones are left out. */
    async getMany(ids: string[]): Promise<CustomTopic[]> {
      if (ids.length === 0) return [];
      const owners = await redis.hmget(idx.all, ...ids);
      // Each owner's alerts are in the owner's slot: one command per alert, never one pipeline across owners.
      const cmds: Command[] = [];
      ids.forEach((id, i) => {
        const owner = owners[i];
        if (owner) cmds.push(['hget', customTopicsKey(prefix, owner), id]);
      });
      const res = await runCommands(redis, cmds);
      return res.map((json) => parse(json as string | null)).filter((t): t is CustomTopic => t !== null);
    },

    /** Every custom topic, with the version it is current as of (read first, so a change during the scan is caught next time). */
    async loadAll(): Promise<{ version: number; topics: CustomTopic[] }> {
      const version = await this.version();
      const ids: string[] = [];
      let cursor = '0';
      do {
        const [next, flat] = await redis.hscan(idx.all, cursor, 'COUNT', 1000);
        cursor = next;
        for (let i = 0; i < flat.length; i += 2) ids.push(flat[i]!);
      } while (cursor !== '0');
      const topics: CustomTopic[] = [];
      for (let i = 0; i < ids.length; i += 1000) topics.push(...(await this.getMany(ids.slice(i, i + 1000))));
      return { version, topics };
    },
  };
}
export type CustomTopicStore = ReturnType<typeof createCustomTopicStore>;
