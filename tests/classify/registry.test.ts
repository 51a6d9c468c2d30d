import type { RedisClient } from '../../src/store/redis.ts';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { matchStory } from '../../src/classify/match.ts';
import { createTopicRegistry } from '../../src/classify/registry.ts';
import { createCustomTopicStore } from '../../src/store/custom-topics.ts';
import { deletePrefix, testRedis, uniquePrefix } from '../helpers/redis.ts';

const seed = {
  title: 'India and Japan foreign ministers hold talks in Tokyo on Quad and UN reform',
  summary: 'External Affairs Minister S. Jaishankar and his Japanese counterpart met in Tokyo.',
  categories: [],
};
const catalog = [{ id: 'japan', name: 'Japan', group: 'Places', description: '', query: 'japan OR tokyo' }];
const limits = { maxChars: 500, maxTerms: 32 };
const log = pino({ level: 'silent' });

/**
 * Two classifier processes share one Redis: each has its own connection and its own compiled index.
 * An alert written through a third connection (the web process) reaches both at their next story.
 */
describe('topic registry: the compiled index follows Redis across processes', () => {
  const prefix = uniquePrefix('registry');
  let web: RedisClient;
  let workerA: RedisClient;
  let workerB: RedisClient;

  beforeAll(() => {
    web = testRedis();
    workerA = testRedis();
    workerB = testRedis();
  });
  afterAll(async () => {
    // The tests' own prefixes too, removed here as well as in each test: a failed assertion skips a test's own cleanup.
    for (const p of [prefix, `${prefix}-log`, `${prefix}-limit`]) await deletePrefix(web, p);
    await Promise.all([web.quit(), workerA.quit(), workerB.quit()]);
  });

  it('adds, changes and removes an own alert in every process', async () => {
    const webStore = createCustomTopicStore(web, prefix);
    const a = createTopicRegistry({ catalog, customs: createCustomTopicStore(workerA, prefix), limits, log });
    const b = createTopicRegistry({ catalog, customs: createCustomTopicStore(workerB, prefix), limits, log });
    const ids = async (r: typeof a) => matchStory(seed, await r.current()).map((m) => m.topicId).sort();

    expect(await ids(a)).toEqual(['japan']);
    const alert = await webStore.create('sub1', { name: 'Jaishankar abroad', query: '"Jaishankar" AND (Japan OR Quad)' }, 1000, 20);
    expect(await ids(a)).toEqual([alert.id, 'japan'].sort());
    expect(await ids(b)).toEqual([alert.id, 'japan'].sort());
    expect(a.topicName(alert.id)).toBe('Jaishankar abroad');

    await webStore.update('sub1', alert.id, { query: 'jaishankar AND osaka', name: 'Osaka' }, 2000);
    expect(await ids(a)).toEqual(['japan']);
    expect(a.topicName(alert.id)).toBe('Osaka');

    await webStore.update('sub1', alert.id, { query: 'jaishank*' }, 3000);
    expect(await ids(b)).toEqual([alert.id, 'japan'].sort());
    expect(await webStore.remove('sub1', alert.id)).toBe(true);
    expect(await ids(a)).toEqual(['japan']);
    expect(await ids(b)).toEqual(['japan']);
    expect(a.topicName(alert.id)).toBeUndefined();
  });

  it('a process further behind than the change log reloads everything', async () => {
    const p2 = `${prefix}-log`;
    const webStore = createCustomTopicStore(web, p2, { changeLogLength: 2 });
    const a = createTopicRegistry({ catalog, customs: createCustomTopicStore(workerA, p2, { changeLogLength: 2 }), limits, log });
    await a.current();
    const first = await webStore.create('sub1', { name: 'One', query: 'jaishankar' }, 1, 20);
    const second = await webStore.create('sub2', { name: 'Two', query: 'quad' }, 1, 20);
    await webStore.create('sub2', { name: 'Three', query: 'osaka' }, 1, 20);
    await webStore.remove('sub1', first.id);
    expect(await webStore.changesSince(0)).toMatchObject({ reload: true });
    const ids = matchStory({ ...seed, title: `${seed.title} Quad` }, await a.current()).map((m) => m.topicId).sort();
    expect(ids).toEqual([second.id, 'japan'].sort());
    await deletePrefix(web, p2);
  });

  it('keeps at most the allowed number of alerts per reader', async () => {
    const store = createCustomTopicStore(web, `${prefix}-limit`);
    await store.create('sub9', { name: 'One', query: 'japan' }, 1, 2);
    await store.create('sub9', { name: 'Two', query: 'india' }, 2, 2);
    const version = await store.version();
    await expect(store.create('sub9', { name: 'Three', query: 'quad' }, 1, 2)).rejects.toThrow(/already have 2 alerts/);
    await expect(store.checkRoom('sub9', 2)).rejects.toThrow(/already have 2 alerts/);
    await expect(store.checkRoom('sub9', 3)).resolves.toBeUndefined();
    expect((await store.list('sub9')).map((t) => t.name)).toEqual(['One', 'Two']);
    // Refused at the limit: nothing was announced.
    expect(await store.version()).toBe(version);
    await deletePrefix(web, `${prefix}-limit`);
  });
});
