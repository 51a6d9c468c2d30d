import { describe, expect, it } from 'vitest';
import type { Follow, Story, Subscriber } from '../../src/model.ts';
import { explainTrace, type TraceInput } from '../../src/ops/trace.ts';
import type { DeliveryRecord } from '../../src/store/ledger.ts';
import { DEFAULT_DELIVERY_PREFS } from '../../src/store/subscribers.ts';

const NOW = Date.parse('2027-03-01T12:00:00Z');
const subscriber: Subscriber = { id: 's1', email: 'r@example.test', quality: 'all', timeZone: 'Europe/Paris', digestTime: '08:00', pendingEmail: null, createdAt: 0, updatedAt: 0 };
const story: Story = { id: 'st1', feedId: 'wire', guid: 'g', url: 'https://wire.example.test/a', title: 'Tokyo talks', summary: '', categories: [], publishedAt: NOW - 3600_000, firstSeenAt: NOW - 3000_000 };
const record = (r: Partial<DeliveryRecord>): DeliveryRecord => ({
  status: 'sent', reason: null, attempts: 1, reclaims: 0, jobId: 'j', topicId: 'japan', lastError: null, via: null,
  createdAt: NOW - 60_000, updatedAt: NOW - 30_000, clickedAt: null, devicesDone: [], ...r,
});
const follow = (f: Partial<Follow> = {}): Record<string, Follow> => ({ japan: { cadence: 'instant', channels: ['push', 'email'], ...f } });

const base: TraceInput = {
  subscriber, follows: follow(), prefs: { ...DEFAULT_DELIVERY_PREFS }, emailHealth: { hardBounces: 0, disabledAt: null, disabledReason: null },
  pushDevices: 1, story, classifiedAt: NOW - 2900_000, matches: [{ topicId: 'japan', score: 4, why: 'Matched: Tokyo in title' }],
  topicName: (id) => ({ japan: 'Japan', world: 'World' })[id] ?? id, bestMinScore: 5,
  records: { push: null, email: null }, jobStates: {}, now: NOW,
};
const explain = (patch: Partial<TraceInput>) => explainTrace({ ...base, ...patch }).channels.map((c) => `${c.channel}: ${c.outcome}: ${c.explanation}`);

describe('explainTrace', () => {
  it.each<[string, Partial<TraceInput>, string[]]>([
    ['not classified yet', { classifiedAt: null, matches: [] }, ['push: none: no alert: the story has not been classified yet', 'email: none: no alert: the story has not been classified yet']],
    ['no topic matches', { matches: [] }, ['push: none: no alert: the story matches none of the current topics', 'email: none: no alert: the story matches none of the current topics']],
    ['not followed', { follows: {}, matches: [{ topicId: 'japan', score: 4, why: 'w' }, { topicId: 'world', score: 2, why: 'w' }] },
      ['push: none: no alert: not followed: the reader follows none of the matched topics (Japan, World)', 'email: none: no alert: not followed: the reader follows none of the matched topics (Japan, World)']],
    ['below "less like this"', { follows: follow({ minScore: 6 }) }, ['push: none: no alert: below threshold: score 4 < 6 ("less like this")', 'email: none: no alert: below threshold: score 4 < 6 ("less like this")']],
    ['best only', { subscriber: { ...subscriber, quality: 'best' } }, ['push: none: no alert: below threshold: the reader takes only the best (score 4 < 5)', 'email: none: no alert: below threshold: the reader takes only the best (score 4 < 5)']],
    ['push subscription gone, email unconfirmed', { pushDevices: 0, subscriber: { ...subscriber, email: null, pendingEmail: 'new@example.test' } },
      ['push: none: no alert: push subscription gone: no device to push to', 'email: none: no alert: channel unconfirmed: new@example.test waits for its confirmation link']],
    ['email disabled; push job still waiting', { emailHealth: { hardBounces: 3, disabledAt: 1, disabledReason: '550 no such user' }, jobStates: { push: 'delayed' } },
      ['push: none: no alert: an alert is due but not recorded yet: its job is delayed', 'email: none: no alert: email disabled: 550 no such user']],
    ['quiet hours and the daily cap', {
      prefs: { ...DEFAULT_DELIVERY_PREFS, quietHours: { from: '22:00', to: '07:00' }, dailyPushCap: 5 },
      records: { push: record({ status: 'held', reason: 'quiet-hours' }), email: record({ status: 'skipped', reason: 'cap' }) },
    }, [
      'push: held: held since 2027-03-01T11:59:30.000Z: quiet hours (22:00–07:00 local); goes out with the bundle when the hold ends',
      'email: skipped: not sent: daily push cap reached (5 a day) (decided at 2027-03-01T11:59:30.000Z)',
    ]],
    ['over the cap held for the digest; a burst held for the bundle', {
      prefs: { ...DEFAULT_DELIVERY_PREFS, dailyPushCap: 3 },
      records: { push: record({ status: 'held', reason: 'cap' }), email: record({ status: 'held', reason: 'burst' }) },
    }, [
      'push: held: held since 2027-03-01T11:59:30.000Z: daily push cap reached (3 a day); goes out with the next digest',
      'email: held: held since 2027-03-01T11:59:30.000Z: a burst of alerts: bundled into one notification; goes out with the bundle when the hold ends',
    ]],
    ['sent in a bundle, and failed for good', {
      records: { push: record({ via: 'bundle b1', attempts: 2, clickedAt: NOW }), email: record({ status: 'failed', attempts: 3, lastError: '550 mailbox unavailable' }) },
    }, [
      'push: sent: sent at 2027-03-01T11:59:30.000Z after 2 attempts (in bundle b1); opened at 2027-03-01T12:00:00.000Z',
      'email: failed: failed for good at 2027-03-01T11:59:30.000Z after 3 attempts: 550 mailbox unavailable',
    ]],
    ['channel not chosen', { follows: follow({ channels: ['push'] }), records: { push: record({}), email: null } },
      ['push: sent: sent at 2027-03-01T11:59:30.000Z after 1 attempt', 'email: none: no alert: channel not chosen: the reader gets "Japan" by push only']],
    ['muted, and a skip reason of the dispatcher', { follows: follow({ mutedUntil: NOW + 1000 }), records: { push: record({ status: 'skipped', reason: 'no-device' }), email: null } },
      ['push: skipped: not sent: push subscription gone: no device left to push to (decided at 2027-03-01T11:59:30.000Z)', 'email: none: no alert: muted until 2027-03-01T12:00:01.000Z']],
  ])('%s', (_name, patch, expected) => {
    expect(explain(patch)).toEqual(expected);
  });

  it('says the matches are re-run against the current topics, and how the reader follows each', () => {
    const t = explainTrace({ ...base, follows: { japan: { cadence: 'daily', channels: [] } } });
    expect(t.matchedNote).toBe('Matched against the topics as they are now (2027-03-01T12:00:00.000Z); the classifier ran at 2027-03-01T11:11:40.000Z.');
    expect(t.matches).toEqual([{ topicId: 'japan', name: 'Japan', score: 4, why: 'Matched: Tokyo in title', follow: 'followed daily: goes into the digest, no instant alert' }]);
    expect(t.story).toMatchObject({ ingestedAt: '2027-03-01T11:10:00.000Z', publishedAt: '2027-03-01T11:00:00.000Z' });
  });
});
