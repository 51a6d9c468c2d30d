import { describe, expect, it } from 'vitest';
import { dateDigestAt, digestDate, effectiveDigestTime, effectiveZone, isValidTimeZone, localDate, nextDigestAt, sameDayDigestAt } from '../../src/digest/schedule.ts';

/**
 * 2027 changes: America/New_York springs forward on 14 March (02:00 EST -> 03:00 EDT) and falls back on
 * 7 November (02:00 EDT -> 01:00 EST); Europe/London on 28 March (01:00 GMT -> 02:00 BST) and 31 October
 * (02:00 BST -> 01:00 GMT). Asia/Kolkata has no DST (UTC+05:30).
 */
describe('nextDigestAt across the 2027 DST changes', () => {
  const cases: [string, string, string, string, string][] = [
    // zone, digest time, after, expected, why
    ['America/New_York', '08:00', '2027-03-13T12:00:00Z', '2027-03-13T13:00:00Z', 'EST the day before'],
    ['America/New_York', '08:00', '2027-03-13T13:00:00Z', '2027-03-14T12:00:00Z', 'EDT on the change day'],
    ['America/New_York', '02:30', '2027-03-13T08:00:00Z', '2027-03-14T07:00:00Z', '02:30 does not exist: first valid minute 03:00 EDT'],
    ['America/New_York', '02:00', '2027-03-13T08:00:00Z', '2027-03-14T07:00:00Z', '02:00 does not exist either'],
    ['America/New_York', '02:30', '2027-03-14T07:00:00Z', '2027-03-15T06:30:00Z', 'the day after: 02:30 EDT'],
    ['America/New_York', '03:00', '2027-03-14T05:00:00Z', '2027-03-14T07:00:00Z', '03:00 EDT exists'],
    ['America/New_York', '01:30', '2027-11-06T06:00:00Z', '2027-11-07T05:30:00Z', 'fall back: first 01:30 (EDT)'],
    ['America/New_York', '01:30', '2027-11-07T05:30:00Z', '2027-11-08T06:30:00Z', 'not the second 01:30 (EST) the same day'],
    ['America/New_York', '01:30', '2027-11-07T06:00:00Z', '2027-11-08T06:30:00Z', 'even asked between the two 01:30s'],
    ['America/New_York', '08:00', '2027-11-07T05:00:00Z', '2027-11-07T13:00:00Z', 'EST after the change'],
    ['Europe/London', '01:30', '2027-03-27T02:00:00Z', '2027-03-28T01:00:00Z', '01:30 does not exist: 02:00 BST'],
    ['Europe/London', '08:00', '2027-03-27T09:00:00Z', '2027-03-28T07:00:00Z', 'BST on the change day'],
    ['Europe/London', '08:00', '2027-03-27T07:00:00Z', '2027-03-27T08:00:00Z', 'GMT the day before'],
    ['Europe/London', '01:30', '2027-10-30T02:00:00Z', '2027-10-31T00:30:00Z', 'fall back: first 01:30 (BST)'],
    ['Europe/London', '01:30', '2027-10-31T00:30:00Z', '2027-11-01T01:30:00Z', 'not the second 01:30 (GMT)'],
    ['Europe/London', '08:00', '2027-10-31T00:00:00Z', '2027-10-31T08:00:00Z', 'GMT after the change'],
    // Fall-back shifts other than an hour: 30 minutes at Lord Howe (02:00 +11 -> 01:30 +10:30), two hours at Troll (03:00 +02 -> 01:00 +00).
    ['Australia/Lord_Howe', '01:45', '2027-04-03T00:00:00Z', '2027-04-03T14:45:00Z', 'fall back by 30 min: first 01:45 (+11)'],
    ['Australia/Lord_Howe', '01:45', '2027-04-03T14:45:00Z', '2027-04-04T15:15:00Z', 'not the second 01:45 (+10:30)'],
    ['Antarctica/Troll', '01:30', '2027-10-30T12:00:00Z', '2027-10-30T23:30:00Z', 'fall back by two hours: first 01:30 (+02)'],
    ['Antarctica/Troll', '01:30', '2027-10-30T23:30:00Z', '2027-11-01T01:30:00Z', 'not the second 01:30 (+00) the same day'],
    // Nuuk (and Scoresbysund) spring forward at 23:00 -02 -> 00:00 -01: the skipped hour is the end of a day, and its
    // first valid minute after is midnight of the next date (2028: 25 -> 26 March).
    ['America/Nuuk', '23:30', '2028-03-25T12:00:00Z', '2028-03-26T01:00:00Z', '23:30 does not exist: first valid minute 00:00 -01 the next day'],
    ['America/Nuuk', '23:00', '2028-03-25T12:00:00Z', '2028-03-26T01:00:00Z', '23:00 does not exist either'],
    ['America/Nuuk', '23:30', '2028-03-26T01:00:00Z', '2028-03-27T00:30:00Z', 'the next day: 23:30 -01'],
    ['America/Nuuk', '22:59', '2028-03-25T12:00:00Z', '2028-03-26T00:59:00Z', '22:59 -02 exists'],
    // Changes at midnight: Santiago springs forward 00:00 -04 -> 01:00 -03 (5 September) and falls back to 23:00 (3 April);
    // Havana falls back 01:00 -04 -> 00:00 -05, so the first hour of 7 November occurs twice. Lord Howe springs by 30 min.
    ['America/Santiago', '00:00', '2027-09-04T12:00:00Z', '2027-09-05T04:00:00Z', 'midnight does not exist: 01:00 -03'],
    ['America/Santiago', '23:30', '2027-04-03T12:00:00Z', '2027-04-04T02:30:00Z', 'fall back to 23:00: first 23:30 (-03)'],
    ['America/Santiago', '23:30', '2027-04-04T02:30:00Z', '2027-04-05T03:30:00Z', 'not the second 23:30 (-04)'],
    ['America/Havana', '00:30', '2027-11-06T12:00:00Z', '2027-11-07T04:30:00Z', 'first 00:30 (-04)'],
    ['America/Havana', '00:30', '2027-11-07T04:30:00Z', '2027-11-08T05:30:00Z', 'not the second 00:30 (-05)'],
    ['Australia/Lord_Howe', '02:15', '2027-10-02T12:00:00Z', '2027-10-02T15:30:00Z', 'spring forward by 30 min: 02:30 (+11)'],
    ['Asia/Kolkata', '08:00', '2027-03-14T00:00:00Z', '2027-03-14T02:30:00Z', 'UTC+05:30'],
    ['Asia/Kolkata', '08:00', '2027-03-14T02:30:00Z', '2027-03-15T02:30:00Z', 'strictly after'],
    ['Asia/Kolkata', '02:30', '2027-11-06T20:00:00Z', '2027-11-06T21:00:00Z', '02:30 IST is 21:00 UTC the day before'],
    ['Asia/Kolkata', '00:00', '2027-10-31T00:00:00Z', '2027-10-31T18:30:00Z', 'midnight IST is 18:30 UTC the day before'],
    ['Asia/Kolkata', '23:59', '2027-12-31T18:00:00Z', '2027-12-31T18:29:00Z', 'one minute before midnight IST'],
  ];

  it.each(cases)('%s %s after %s -> %s (%s)', (zone, hhmm, after, expected) => {
    expect(new Date(nextDigestAt(Date.parse(after), zone, hhmm)).toISOString()).toBe(new Date(expected).toISOString());
  });

  it('names each digest by the local date it is for', () => {
    expect(localDate(Date.parse('2027-03-14T07:00:00Z'), 'America/New_York')).toBe('2027-03-14');
    expect(localDate(Date.parse('2027-10-31T18:30:00Z'), 'Asia/Kolkata')).toBe('2027-11-01');
    expect(localDate(Date.parse('2027-10-31T00:30:00Z'), 'Europe/London')).toBe('2027-10-31');
  });

  it('names a digest pushed past midnight by a spring-forward gap for the day it is for', () => {
    expect(digestDate(Date.parse('2028-03-26T01:00:00Z'), 'America/Nuuk', '23:30')).toBe('2028-03-25');
    expect(digestDate(Date.parse('2028-03-27T00:30:00Z'), 'America/Nuuk', '23:30')).toBe('2028-03-26');
    // A gap at the start of a day stays on that day: Santiago's 00:00 on 5 September 2027 goes at 01:00 the same date.
    expect(digestDate(Date.parse('2027-09-05T04:00:00Z'), 'America/Santiago', '00:00')).toBe('2027-09-05');
    expect(digestDate(Date.parse('2027-11-09T02:30:00Z'), 'Asia/Kolkata', '08:00')).toBe('2027-11-09');
    // A due time that is not the digest time of either date (settings changed since) goes by its local date.
    expect(digestDate(Date.parse('2027-11-18T07:59:00Z'), 'UTC', '08:00')).toBe('2027-11-18');
  });

  it('gives the digest time of the day an instant falls on, under other settings (a due digest whose reader saved new ones)', () => {
    const iso = (ms: number) => new Date(ms).toISOString();
    expect(iso(sameDayDigestAt(Date.parse('2027-11-22T09:00:00Z'), 'UTC', '09:00'))).toBe('2027-11-22T09:00:00.000Z');
    expect(iso(sameDayDigestAt(Date.parse('2027-11-22T09:00:00Z'), 'UTC', '20:00'))).toBe('2027-11-22T20:00:00.000Z');
    expect(iso(sameDayDigestAt(Date.parse('2027-11-22T09:00:00Z'), 'UTC', '07:00'))).toBe('2027-11-22T07:00:00.000Z');
    expect(iso(sameDayDigestAt(Date.parse('2027-11-22T09:00:00Z'), 'UTC', '00:00'))).toBe('2027-11-22T00:00:00.000Z');
    // Nuuk's 25 March 23:30, due at 00:00 on the 26th, stays where it is.
    expect(iso(sameDayDigestAt(Date.parse('2028-03-26T01:00:00Z'), 'America/Nuuk', '23:30'))).toBe('2028-03-26T01:00:00.000Z');
    expect(iso(sameDayDigestAt(Date.parse('2027-09-05T04:00:00Z'), 'America/Santiago', '00:00'))).toBe('2027-09-05T04:00:00.000Z');
  });

  it.each([
    // date, zone, time, expected: the digest of that date under those settings, whether or not it has passed
    ['2028-05-11', 'Asia/Tokyo', '08:00', '2028-05-10T23:00:00Z'],
    ['2028-05-11', 'America/Los_Angeles', '08:00', '2028-05-11T15:00:00Z'],
    ['2028-06-02', 'Pacific/Kiritimati', '08:00', '2028-06-01T18:00:00Z'],
    ['2028-06-02', 'Pacific/Pago_Pago', '08:00', '2028-06-02T19:00:00Z'],
    ['2028-03-25', 'America/Nuuk', '23:30', '2028-03-26T01:00:00Z'],
    ['2027-11-07', 'America/New_York', '01:30', '2027-11-07T05:30:00Z'],
  ])('the digest of %s in %s at %s is due at %s, and is named for that date', (date, zone, hhmm, expected) => {
    const at = dateDigestAt(date, zone, hhmm);
    expect(new Date(at).toISOString()).toBe(new Date(expected).toISOString());
    expect(digestDate(at, zone, hhmm)).toBe(date);
  });

  it('rejects a malformed time and an unknown zone with a clear error', () => {
    expect(() => nextDigestAt(0, 'UTC', '25:00')).toThrow('invalid digest time "25:00"');
    expect(() => nextDigestAt(0, 'Mars/Olympus', '08:00')).toThrow('unknown time zone "Mars/Olympus"');
  });

  it('falls back to UTC for an unknown stored zone and names the problem', () => {
    expect(effectiveZone('Asia/Kolkata')).toEqual({ zone: 'Asia/Kolkata', problem: null });
    expect(effectiveZone('Mars/Olympus')).toEqual({ zone: 'UTC', problem: 'unknown time zone "Mars/Olympus": using UTC' });
  });

  it('takes no zone that means "the zone of this process" (Luxon\'s local, system, default): processes would disagree', () => {
    for (const zone of ['local', 'system', 'default', 'Local']) {
      expect(isValidTimeZone(zone)).toBe(false);
      expect(effectiveZone(zone)).toEqual({ zone: 'UTC', problem: `unknown time zone "${zone}": using UTC` });
      expect(() => nextDigestAt(0, zone, '08:00')).toThrow(`unknown time zone "${zone}"`);
    }
    expect(isValidTimeZone('Etc/GMT-14')).toBe(true);
  });
});

describe('effectiveDigestTime', () => {
  it.each([
    ['08:00', '08:00', null],
    ['8:00', '08:00', null],
    ['7.30', '07:30', null],
    ['23:59', '23:59', null],
    ['24:00', '08:00', 'invalid digest time "24:00": using 08:00'],
    ['noon', '08:00', 'invalid digest time "noon": using 08:00'],
    ['', '08:00', 'invalid digest time "": using 08:00'],
  ])('%j -> %s', (stored, time, problem) => {
    expect(effectiveDigestTime(stored)).toEqual({ time, problem });
  });
});
