import { DateTime } from 'luxon';

/** Pure digest timing. All instants are epoch milliseconds; zones are IANA names. */

/**
 * Luxon's own words for the zone of the process running it: each process (web, tick, dispatcher, on machines set
 * up apart) would read a reader's "local" differently, so their digest time and date would not agree.
 */
const PROCESS_ZONES = new Set(['local', 'system', 'default']);

/** Zone names are few and the tz database does not change while Herald runs: remember each answer. */
const zoneValidity = new Map<string, boolean>();
export function isValidTimeZone(zone: string): boolean {
  let valid = zoneValidity.get(zone);
  if (valid === undefined) {
    valid = !PROCESS_ZONES.has(zone.toLowerCase()) && DateTime.now().setZone(zone).isValid;
    // Bounded: arbitrary strings from requests must not grow this without limit.
    if (zoneValidity.size < 10_000) zoneValidity.set(zone, valid);
  }
  return valid;
}

export function parseLocalTime(hhmm: string): { hour: number; minute: number } | null {
  const m = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(hhmm);
  return m ? { hour: Number(m[1]), minute: Number(m[2]) } : null;
}

/**
 * The first instant strictly after `after` at which the local clock in `zone` shows `hhmm`.
 * A time skipped by a spring-forward change resolves to the first valid minute after the gap; a time that
 * occurs twice on a fall-back day resolves to its first occurrence, so the digest goes out once.
 */
export function nextDigestAt(after: number, zone: string, hhmm: string): number {
  const t = parseLocalTime(hhmm);
  if (!t) throw new Error(`invalid digest time "${hhmm}"`);
  const local = DateTime.fromMillis(after, { zone });
  if (!local.isValid || !isValidTimeZone(zone)) throw new Error(`unknown time zone "${zone}"`);
  for (let dayOffset = 0; dayOffset <= 2; dayOffset++) {
    const day = local.startOf('day').plus({ days: dayOffset });
    const candidate = atLocalTime(day, t.hour, t.minute);
    if (candidate > after) return candidate;
  }
  throw new Error('unreachable: a local time occurs at least once within three days');
}

/** Longer than any fall-back shift in the tz database (two hours, Antarctica/Troll): `at` minus this is before the change. */
const MAX_FALL_BACK_MS = 3 * 60 * 60_000;

function atLocalTime(day: DateTime, hour: number, minute: number): number {
  const zone = day.zone;
  const target = hour * 60 + minute;
  const wall = (ms: number) => {
    const d = DateTime.fromMillis(ms, { zone });
    return { date: d.toISODate(), minutes: d.hour * 60 + d.minute };
  };
  const date = day.toISODate();
  let at = DateTime.fromObject({ year: day.year, month: day.month, day: day.day, hour, minute }, { zone }).toMillis();
  if (wall(at).minutes !== target) {
    // In a spring-forward gap Luxon jumps past it by the gap's size; walk back to the gap's end, the first minute whose
    // wall clock (date and time) is at or after the wanted one. Compared with the date: at Nuuk the gap is the day's
    // last hour (22:59 -02 -> 00:00 -01), its end is on the next date, and a walk kept to the same date stopped at once,
    // leaving 00:30 for a 23:30 digest instead of 00:00.
    const wanted = `${date}T${String(hour).padStart(2, '0')}:${String(minute).padStart(2, '0')}`;
    const wallKey = (ms: number) => DateTime.fromMillis(ms, { zone }).toFormat("yyyy-MM-dd'T'HH:mm");
    while (wallKey(at - 60_000) >= wanted) at -= 60_000;
    return at;
  }
  // On a fall-back day the wall time may occur twice: take the first. Luxon may have picked the second; the
  // first is earlier by the shift, read from the offsets rather than assumed (30 min at Lord Howe, 60 in most
  // zones, 120 at Antarctica/Troll, where a list of 60 and 30 sent the digest at the second occurrence).
  const shift = DateTime.fromMillis(at - MAX_FALL_BACK_MS, { zone }).offset - DateTime.fromMillis(at, { zone }).offset;
  if (shift > 0) {
    const earlier = at - shift * 60_000;
    const w = wall(earlier);
    if (w.date === date && w.minutes === target) return earlier;
  }
  return at;
}

/** Local calendar date (YYYY-MM-DD) of an instant in a zone: names the digest, one per date. */
export function localDate(at: number, zone: string): string {
  return DateTime.fromMillis(at, { zone }).toISODate() ?? new Date(at).toISOString().slice(0, 10);
}

/**
 * The local date the digest due at `dueAt` is for, which names it (one per date): the date its clock shows then,
 * except for a time skipped by a spring-forward change at the end of a day. 23:30 at Nuuk on 25 March 2028 goes out
 * at 00:00 on the 26th and is still the 25th's digest; named by the 26th, it took the id of the 26th's own digest,
 * which then found the date sent and never went.
 */
export function digestDate(dueAt: number, zone: string, hhmm: string): string {
  const local = DateTime.fromMillis(dueAt, { zone });
  const date = local.toISODate() ?? new Date(dueAt).toISOString().slice(0, 10);
  const t = parseLocalTime(hhmm);
  // Only a clock showing less than the digest time can be the day before's, pushed past midnight: the rest (every
  // digest but those) skips the day-before computation, which the sweep would pay for each due reader.
  if (!t || local.hour * 60 + local.minute >= t.hour * 60 + t.minute) return date;
  const dayBefore = local.startOf('day').minus({ days: 1 });
  return atLocalTime(dayBefore, t.hour, t.minute) === dueAt ? (dayBefore.toISODate() ?? date) : date;
}

/**
 * The digest time, under these settings, of the local day `at` falls on (a time a gap pushed past midnight
 * included): where a digest already due moves when its reader saves new settings before the sweep reaches it.
 */
export function sameDayDigestAt(at: number, zone: string, hhmm: string): number {
  return nextDigestAt(DateTime.fromMillis(at, { zone }).startOf('day').toMillis() - 1, zone, hhmm);
}

/**
 * The digest time, under these settings, of one local date (`YYYY-MM-DD`): where a digest owed for that date goes when
 * its reader saves another zone or time. The instant it names is that date's by `digestDate`, a gap included.
 */
export function dateDigestAt(date: string, zone: string, hhmm: string): number {
  const t = parseLocalTime(hhmm);
  if (!t) throw new Error(`invalid digest time "${hhmm}"`);
  const day = DateTime.fromISO(date, { zone });
  if (!day.isValid || !isValidTimeZone(zone)) throw new Error(`unknown time zone "${zone}" or date "${date}"`);
  return atLocalTime(day.startOf('day'), t.hour, t.minute);
}

/**
 * The zone to compute with: the stored one when Luxon knows it, else UTC with the problem named, so a
 * subscriber whose zone was saved before validation (or dropped from the tz database) still gets mail.
 */
export function effectiveZone(zone: string): { zone: string; problem: string | null } {
  return isValidTimeZone(zone) ? { zone, problem: null } : { zone: 'UTC', problem: `unknown time zone "${zone.slice(0, 64)}": using UTC` };
}

/** The digest time of a reader who never chose one. */
export const DEFAULT_DIGEST_TIME = '08:00';

/**
 * The digest time to compute with: the stored one when valid; "8:00" read as 08:00; anything else the
 * default with the problem named. One reader's bad value (stored before validation) must not stop the
 * minute sweep for everyone due after them.
 */
export function effectiveDigestTime(hhmm: string): { time: string; problem: string | null } {
  if (parseLocalTime(hhmm)) return { time: hhmm, problem: null };
  const loose = /^\s*(\d{1,2})[:.h](\d{2})\s*$/.exec(hhmm);
  const padded = loose ? `${loose[1]!.padStart(2, '0')}:${loose[2]}` : null;
  if (padded && parseLocalTime(padded)) return { time: padded, problem: null };
  return { time: DEFAULT_DIGEST_TIME, problem: `invalid digest time "${hhmm.slice(0, 32)}": using ${DEFAULT_DIGEST_TIME}` };
}

/** Zone and time together, with whatever was wrong with either (what the digest state shows the reader). */
export function effectiveDigestClock(subscriber: { timeZone: string; digestTime: string }): { zone: string; time: string; problem: string | null } {
  const { zone, problem: zoneProblem } = effectiveZone(subscriber.timeZone);
  const { time, problem: timeProblem } = effectiveDigestTime(subscriber.digestTime);
  const problems = [zoneProblem, timeProblem].filter((p): p is string => p !== null);
  return { zone, time, problem: problems.length > 0 ? problems.join('; ') : null };
}

