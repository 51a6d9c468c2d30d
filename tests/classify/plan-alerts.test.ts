import { describe, expect, it } from 'vitest';
import { planInstantAlerts, unplanned } from '../../src/classify/classify-story.ts';
import type { Cadence, Channel } from '../../src/model.ts';

describe('planInstantAlerts', () => {
  const matches = [
    { topicId: 'india', score: 4, why: 'Matched: India in title' },
    { topicId: 'japan', score: 7, why: 'Matched: Japan in title, Tokyo in title' },
    { topicId: 'alert.abc', score: 1, why: 'Matched: Jaishankar in summary' },
  ];
  const followers = new Map([
    ['japan', ['a', 'b', 'c']],
    ['india', ['a', 'd']],
    ['alert.abc', ['e', 'f']],
  ]);
  const f = (cadence: Cadence, channels: Channel[]) => ({ cadence, channels });
  type Follows = Record<string, { cadence: Cadence; channels: Channel[] }>;
  const now = Date.parse('2027-01-15T00:00:00Z');
  const follows = new Map<string, Follows>([
    ['a', { japan: f('instant', ['push']), india: f('instant', ['email']) }],
    ['b', { japan: f('daily', []) }],
    ['c', {}],
    ['d', { india: f('instant', ['push']) }],
    ['e', { 'alert.abc': f('instant', ['email']) }],
    ['f', { 'alert.abc': f('instant', ['push']) }],
  ]);

  it('sends one alert per reader and channel, named by the best-scoring topic they follow on that channel', () => {
    const plans = planInstantAlerts(matches, followers, follows, now, { of: new Map([['f', 'best']]), bestMinScore: 3 });
    // Reader a follows Japan by push and India by email: the email is India's (the send checks its topic wants email).
    expect(plans).toEqual([
      { subscriberId: 'a', topicId: 'japan', why: 'Matched: Japan in title, Tokyo in title', channels: ['push'] },
      { subscriberId: 'a', topicId: 'india', why: 'Matched: India in title', channels: ['email'] },
      { subscriberId: 'd', topicId: 'india', why: 'Matched: India in title', channels: ['push'] },
      { subscriberId: 'e', topicId: 'alert.abc', why: 'Matched: Jaishankar in summary', channels: ['email'] },
    ]);
  });

  it('"only the best" readers get strong matches only', () => {
    const best = new Map([['a', 'best' as const], ['d', 'best' as const]]);
    const plans = planInstantAlerts(matches, followers, follows, now, { of: best, bestMinScore: 5 });
    expect(plans.map((p) => [p.subscriberId, p.topicId, p.channels])).toEqual([
      ['a', 'japan', ['push']],
      ['e', 'alert.abc', ['email']],
      ['f', 'alert.abc', ['push']],
    ]);
  });

  it('a channel two followed topics share is planned once, under the stronger topic', () => {
    const both = new Map([['a', { japan: f('instant', ['email']), india: f('instant', ['email', 'push']) }]]);
    const plans = planInstantAlerts(matches, new Map([['japan', ['a']], ['india', ['a']]]), both, now);
    expect(plans.map((p) => [p.subscriberId, p.topicId, p.channels])).toEqual([
      ['a', 'japan', ['email']],
      ['a', 'india', ['push']],
    ]);
  });
});

describe('unplanned', () => {
  it.each([
    ['nothing earlier', [], [['a', 'push']], []],
    ['the same plan again', [['a', 'push'], ['a', 'email']], [['a', 'email'], ['a', 'push']], []],
    ['a reader gone from the plan', [['a', 'push'], ['b', 'push']], [['b', 'push']], [['a', 'push']]],
    ['one channel of a reader gone', [['a', 'push'], ['a', 'email']], [['a', 'push']], [['a', 'email']]],
    ['a reader new to the plan', [['a', 'push']], [['a', 'push'], ['c', 'email']], []],
  ] as const)('%s', (_, earlier, planned, left) => {
    const pair = ([subscriberId, channel]: readonly [string, 'push' | 'email']) => ({ subscriberId, channel });
    expect(unplanned(earlier.map(pair), planned.map(pair))).toEqual(left.map(pair));
  });
});
