import { describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import { addressTag, createUnsubscribeLinks, digestViewUrl, unsubscribeUrl, verifyDigestView, verifyUnsubscribe } from '../../src/deliver/email/signed-links.ts';
import { followAllows } from '../../src/classify/follow-allows.ts';
import { planInstantAlerts } from '../../src/classify/classify-story.ts';
import { renderConfirmEmail, renderManageLinkEmail } from '../../src/web/emails.ts';
import { mergeFollows, muteFollow, raiseThreshold, resetTuning } from '../../src/web/follows.ts';
import { mergeInbox } from '../../src/web/inbox-view.ts';
import type { Follow } from '../../src/model.ts';
import { isAllowedPushEndpoint } from '../../src/web/push-endpoint.ts';
import { loggedUrl } from '../../src/web/server.ts';

describe('loggedUrl: the request log shows no credential of a URL', () => {
  it.each([
    ['/confirm-email?t=AAAAAAAAAAAAAAAAAAAAAbbbbbbbbbbbbbbbbbbbbbb', '/confirm-email?t=[redacted]'],
    ['/unsubscribe?s=sub1&t=japan&a=tag123&sig=abc', '/unsubscribe?s=sub1&t=[redacted]&a=[redacted]&sig=[redacted]'],
    ['/digest?s=sub1&d=2027-01-13&sig=xyz', '/digest?s=sub1&d=2027-01-13&sig=[redacted]'],
    ['/websub/feed%201?token=secret&hub.mode=subscribe&hub.challenge=c', '/websub/feed%201?token=[redacted]&hub.mode=subscribe&hub.challenge=c'],
    ['/api/stories?at=1&st=2&token2=3', '/api/stories?at=1&st=2&token2=3'],
    ['/manage#t=abc', '/manage#t=abc'],
    ['/plain', '/plain'],
  ])('%s', (url, logged) => {
    expect(loggedUrl(url)).toBe(logged);
  });
});

describe('isAllowedPushEndpoint', () => {
  const services = ['https://fcm.googleapis.com', 'https://*.notify.windows.com', 'https://127.0.0.1:4433'];
  it.each([
    ['https://fcm.googleapis.com/fcm/send/abc', true],
    ['https://wns2-par02p.notify.windows.com/w/?token=x', true],
    ['https://127.0.0.1:4433/push/1', true],
    ['http://fcm.googleapis.com/fcm/send/abc', false],
    ['https://notify.windows.com/w', false],
    ['https://evilnotify.windows.com/w', false],
    ['https://fcm.googleapis.com.evil.test/x', false],
    ['https://127.0.0.1:4434/push/1', false],
    ['https://127.0.0.1/push/1', false],
    ['https://user:pw@fcm.googleapis.com/x', false],
    ['https://192.168.1.1/internal', false],
    ['not a url', false],
  ])('%s -> %s', (endpoint, allowed) => {
    expect(isAllowedPushEndpoint(endpoint, services)).toBe(allowed);
  });
});

describe('follow tuning', () => {
  const now = Date.parse('2027-01-15T00:00:00Z');
  it('a save keeps "less like this" and the mute of topics still followed, and drops them when turned off', () => {
    const prev = { japan: { cadence: 'instant' as const, channels: ['push' as const], minScore: 3, mutedUntil: now + 1000 } };
    expect(mergeFollows(prev, { japan: { cadence: 'instant', channels: ['email'] } })).toEqual({
      japan: { cadence: 'instant', channels: ['email'], minScore: 3, mutedUntil: now + 1000 },
    });
    expect(mergeFollows(prev, { japan: { cadence: 'off', channels: [] } })).toEqual({ japan: { cadence: 'off', channels: [] } });
  });

  it('raises the threshold one point per press, up to a ceiling, and resets', () => {
    const f: Follow = { cadence: 'instant', channels: ['push'] };
    expect(raiseThreshold(f).minScore).toBe(2);
    expect(raiseThreshold(raiseThreshold(f)).minScore).toBe(3);
    let many = f;
    for (let i = 0; i < 50; i++) many = raiseThreshold(many);
    expect(many.minScore).toBe(12);
    expect(resetTuning({ ...muteFollow(f, now), minScore: 5 })).toEqual(f);
  });

  it.each([
    [{}, 1, true],
    [{ minScore: 3 }, 2, false],
    [{ minScore: 3 }, 3, true],
    [{ mutedUntil: now + 1 }, 9, false],
    [{ mutedUntil: now }, 9, true],
  ])('followAllows(%o, score %d) = %s', (follow, score, allowed) => {
    expect(followAllows(follow, score, now)).toBe(allowed);
  });

  it('instant fan-out skips muted topics and matches below the threshold', () => {
    const matches = [{ topicId: 'japan', score: 2, why: 'Matched: Tokyo in category' }];
    const followers = new Map([['japan', ['a', 'b', 'c']]]);
    const follows = new Map<string, Record<string, Follow>>([
      ['a', { japan: { cadence: 'instant', channels: ['push' as const] } }],
      ['b', { japan: { cadence: 'instant', channels: ['push' as const], minScore: 3 } }],
      ['c', { japan: { cadence: 'instant', channels: ['push' as const], mutedUntil: muteFollow({ cadence: 'instant', channels: [] }, now).mutedUntil! } }],
    ]);
    expect(planInstantAlerts(matches, followers, follows, now).map((p) => p.subscriberId)).toEqual(['a']);
  });
});

describe('mergeInbox', () => {
  it('shows one entry per story, newest first, read only when every channel is read', () => {
    const base = { title: 'T', url: 'https://x.test/', topicId: 'japan', why: 'w' };
    const out = mergeInbox([
      { ...base, storyId: 's1', channel: 'push', at: 10, read: true },
      { ...base, storyId: 's1', channel: 'email', at: 12, read: false },
      { ...base, storyId: 's2', channel: 'push', at: 11, read: true },
    ]);
    expect(out.map((i) => [i.storyId, i.channels, i.at, i.read])).toEqual([
      ['s1', ['push', 'email'], 12, false],
      ['s2', ['push'], 11, true],
    ]);
  });
});

describe('account emails', () => {
  it('renders the confirmation email exactly, escaping the address', () => {
    const mail = renderConfirmEmail({ address: 'a<b>@example.test', confirmUrl: 'https://h.test/confirm-email?t=abc&x=1', validHours: 48 });
    expect(mail.subject).toBe('Confirm your email address for Herald alerts');
    expect(mail.text).toBe(
      'Someone (hopefully you) asked Herald to send news alerts to a<b>@example.test.\n\nConfirm this address: https://h.test/confirm-email?t=abc&x=1\n\nThe link works once, for 48 hours. If you did not ask for this, ignore this email: nothing else will be sent to you.\n',
    );
    expect(mail.html).toContain('<strong>a&lt;b&gt;@example.test</strong>');
    expect(mail.html).toContain('<a href="https://h.test/confirm-email?t=abc&amp;x=1">Confirm this address</a>');
    expect(mail.headers).toEqual({});
  });

  it('renders the manage-link email with the link and its lifetime', () => {
    const mail = renderManageLinkEmail({ manageUrl: 'https://h.test/manage?t=xyz', validDays: 14 });
    expect(mail.subject).toBe('Your link to manage Herald alerts');
    expect(mail.text.split('\n')[2]).toBe('https://h.test/manage?t=xyz');
    expect(mail.text).toContain('It works for 14 days.');
  });
});

describe('signed links', () => {
  it('an unsubscribe link already in a reader\'s inbox keeps its signature: the one Herald made before links named their address', () => {
    const sig = createHmac('sha256', 'k').update('unsubscribe\nsub1\nall').digest('base64url');
    expect(verifyUnsubscribe('k', 'sub1', 'all', null, sig)).toBe(true);
    expect(verifyUnsubscribe('k', 'sub2', 'all', null, sig)).toBe(false);
  });

  it('an unsubscribe link names the address it was mailed to (keyed, case-insensitive) and signs it', () => {
    const link = new URL(unsubscribeUrl('https://h.test', 'k', 'sub1', 'all', 'Reader@Example.test'));
    const [a, sig] = [link.searchParams.get('a')!, link.searchParams.get('sig')!];
    expect([...link.searchParams.keys()]).toEqual(['s', 't', 'a', 'sig']);
    expect(a).toBe(addressTag('k', 'reader@example.test'));
    expect(a).not.toBe(addressTag('other-key', 'reader@example.test'));
    expect(link.search).not.toContain('example');
    expect(verifyUnsubscribe('k', 'sub1', 'all', a, sig)).toBe(true);
    expect(verifyUnsubscribe('k', 'sub1', 'all', addressTag('k', 'new@example.test'), sig)).toBe(false);
    // Neither form's signature passes for the other.
    expect(verifyUnsubscribe('k', 'sub1', 'all', null, sig)).toBe(false);
  });

  it('the links of one email, signed when read, are each reader\'s and address\'s own, whatever was asked for before', () => {
    const links = createUnsubscribeLinks('https://h.test', 'k');
    const asked: [string, string, string][] = [
      ['sub1', 'japan', 'one@example.test'], ['sub1', 'cricket', 'one@example.test'], ['sub2', 'japan', 'two@example.test'],
      ['sub1', 'all', 'one@example.test'], ['sub2', 'japan', 'two@example.test'],
    ];
    for (const [sub, topic, address] of asked) {
      const l = links(sub, topic, address);
      expect(l.topic).toBe(unsubscribeUrl('https://h.test', 'k', sub, topic, address));
      // Read twice, the same link.
      expect(l.topic).toBe(l.topic);
      expect(l.all).toBe(unsubscribeUrl('https://h.test', 'k', sub, 'all', address));
      expect(l.manage).toBe('https://h.test/');
      const url = new URL(l.topic);
      expect(verifyUnsubscribe('k', sub, topic, addressTag('k', address), url.searchParams.get('sig')!)).toBe(true);
    }
  });

  it('a digest link opens that reader\'s digest of that date only, and no unsubscribe signature opens one', () => {
    const sig = new URL(digestViewUrl('https://h.test', 'k', 'sub1', '2027-03-14')).searchParams.get('sig')!;
    expect(verifyDigestView('k', 'sub1', '2027-03-14', sig)).toBe(true);
    expect(verifyDigestView('k', 'sub1', '2027-03-15', sig)).toBe(false);
    expect(verifyDigestView('k', 'sub2', '2027-03-14', sig)).toBe(false);
    expect(verifyDigestView('other-key', 'sub1', '2027-03-14', sig)).toBe(false);
    const unsubscribeSig = new URL(unsubscribeUrl('https://h.test', 'k', 'sub1', '2027-03-14', 'reader@example.test')).searchParams.get('sig')!;
    expect(verifyDigestView('k', 'sub1', '2027-03-14', unsubscribeSig)).toBe(false);
  });
});
