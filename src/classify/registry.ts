import type { Logger } from 'pino';
import type { Topic } from '../config/catalog.ts';
import type { CustomTopic, CustomTopicStore } from '../store/custom-topics.ts';
import { compileTopic, TopicIndex, type CompiledTopic } from './match.ts';
import type { QueryLimits } from './query.ts';

/** The catalog is the operator's file, reviewed like code: its queries may be longer than a reader's. */
export const CATALOG_QUERY_LIMITS: QueryLimits = { maxChars: 6000, maxTerms: 400 };

export function compileCatalog(topics: readonly Topic[]): CompiledTopic[] {
  return topics.map((t) => {
    try {
      return compileTopic(t, CATALOG_QUERY_LIMITS);
    } catch (err) {
      throw new Error(`topic catalog: topic "${t.id}" has a bad query: ${(err as Error).message}`);
    }
  });
}

export interface TopicRegistryDeps {
  catalog: readonly Topic[];
  customs: CustomTopicStore;
  /** Limits of readers' queries: a stored query that no longer fits (limits lowered) is left out, with a warning. */
  limits: QueryLimits;
  log: Logger;
}

/**
 * The compiled index of every topic (catalog and readers' own alerts), kept in step with Redis: each
 * `current()` reads one version counter and, when another process changed an alert, applies only
 * the changed alerts to the index instead of recompiling everything.
 */
export function createTopicRegistry(deps: TopicRegistryDeps) {
  const index = new TopicIndex(compileCatalog(deps.catalog));
  const names = new Map(deps.catalog.map((t) => [t.id, t.name]));
  const customIds = new Set<string>();
  let version = -1;
  let syncing: Promise<void> | null = null;

  const apply = (ids: Iterable<string>, topics: CustomTopic[]) => {
    for (const id of ids) {
      index.remove(id);
      names.delete(id);
      customIds.delete(id);
    }
    for (const t of topics) {
      names.set(t.id, t.name);
      try {
        index.add(compileTopic({ id: t.id, name: t.name, query: t.query }, deps.limits));
        customIds.add(t.id);
      } catch (err) {
        deps.log.warn({ topic_id: t.id, subscriber_id: t.ownerId, err: (err as Error).message }, 'own alert left out of the index: its query no longer compiles');
      }
    }
  };

  const sync = async () => {
    if (version >= 0) {
      const changes = await deps.customs.changesSince(version);
      if (changes.version === version) return;
      if (!('reload' in changes)) {
        apply(changes.ids, await deps.customs.getMany(changes.ids));
        version = changes.version;
        return;
      }
    }
    const all = await deps.customs.loadAll();
    apply([...customIds], all.topics);
    version = all.version;
    deps.log.debug({ custom_topics: customIds.size, version }, 'topic index loaded');
  };

  return {
    /** The index, current as of this call. Concurrent callers share one sync. */
    async current(): Promise<TopicIndex> {
      if (!syncing) syncing = sync().finally(() => (syncing = null));
      await syncing;
      return index;
    },
    /** Name of a catalog topic or of an own alert known at the last sync. */
    topicName(id: string): string | undefined {
      return names.get(id);
    },
    get version() {
      return version;
    },
  };
}
export type TopicRegistry = ReturnType<typeof createTopicRegistry>;
