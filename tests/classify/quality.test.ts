import { describe, expect, it } from 'vitest';
import { explainStory, explainStoryLinear, matchStory, TopicIndex } from '../../src/classify/match.ts';
import { compileCatalog } from '../../src/classify/registry.ts';
import { loadTopics } from '../../src/config/catalog.ts';
import { loadLabelledStories, renderQualityTable, scoreClassifier } from './quality.ts';

/**
 * The catalog against a labelled set of the project's own making (tests/fixtures/classify/labelled-stories.jsonl):
 * 280+ short headlines with summaries, each with the topics a careful reader would file it under.
 */
describe('catalog quality on the labelled set', () => {
  const topics = loadTopics('config/topics.json');
  const compiled = compileCatalog(topics);
  const index = new TopicIndex(compiled);
  const stories = loadLabelledStories();

  it('has at least 200 labelled stories covering every catalog topic', () => {
    expect(stories.length).toBeGreaterThanOrEqual(200);
    for (const t of topics) expect(stories.filter((s) => s.topics.includes(t.id)).length, t.id).toBeGreaterThanOrEqual(10);
  });

  it('reaches 0.9 precision and 0.85 recall overall, reported per topic', () => {
    const result = scoreClassifier(stories, (s) => matchStory(s, index), topics.map((t) => t.id));
    // The table is the report: vitest prints it with the test output.
    console.log(`\n${renderQualityTable(result)}\n${result.mistakes.length} wrong decisions:\n  ${result.mistakes.join('\n  ')}`);
    expect(result.precision).toBeGreaterThanOrEqual(0.9);
    expect(result.recall).toBeGreaterThanOrEqual(0.85);
  });

  it('sends the seed story to Japan, India, World and Politics, and not to Sports or Cricket', () => {
    const seed = stories.find((s) => s.title.startsWith('India and Japan foreign ministers hold talks in Tokyo'))!;
    const ids = matchStory(seed, index).map((m) => m.topicId);
    expect(ids).toEqual(expect.arrayContaining(['japan', 'india', 'world', 'politics']));
    expect(ids).not.toContain('sports');
    expect(ids).not.toContain('cricket');
  });

  it('files an IPL or Ranji Trophy story under cricket and sports, a film or OTT release under entertainment', () => {
    const topicsOf = (title: string) => matchStory(stories.find((s) => s.title.startsWith(title))!, index).map((m) => m.topicId);
    expect(topicsOf('Mumbai Indians edge Chennai Super Kings')).toEqual(expect.arrayContaining(['cricket', 'sports', 'india']));
    expect(topicsOf('Kerala beat Karnataka by six wickets')).toEqual(expect.arrayContaining(['cricket', 'sports', 'india']));
    expect(topicsOf('Panchayat season 4 to stream on Prime Video')).toContain('entertainment');
  });

  it('the index finds exactly what evaluating every topic finds', () => {
    const view = (ms: ReturnType<typeof explainStory>) => ms.map((m) => JSON.parse(JSON.stringify(m)));
    for (const s of stories) expect(view(explainStory(s, index)), s.title).toEqual(view(explainStoryLinear(s, compiled)));
  });
});
