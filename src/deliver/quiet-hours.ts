import { DateTime } from 'luxon';
import { nextDigestAt, parseLocalTime } from '../digest/schedule.ts';

/**
 * Whether `now` falls inside the reader's local quiet hours, and when they end. The window may wrap
 * midnight (22:00-07:00). The end is the next instant the local clock shows `to`, by the digest's rule for
 * clock changes: an end a spring-forward change skips is the first minute after the gap (setting the skipped
 * time moved it on by the gap's size, an hour late in Berlin, 30 minutes on Lord Howe), and on a fall-back
 * day it is the next occurrence after `now` (on the second pass the first one is behind, and held pushes went
 * out a minute later, still inside the window).
 */
export function quietHoursAt(now: number, zone: string, window: { from: string; to: string } | null): { active: false } | { active: true; endsAt: number } {
  if (!window) return { active: false };
  const from = parseLocalTime(window.from);
  const to = parseLocalTime(window.to);
  if (!from || !to) return { active: false };
  const local = DateTime.fromMillis(now, { zone });
  if (!local.isValid) return { active: false };
  const minutes = local.hour * 60 + local.minute;
  const start = from.hour * 60 + from.minute;
  const end = to.hour * 60 + to.minute;
  if (start === end) return { active: false };
  const inside = start < end ? minutes >= start && minutes < end : minutes >= start || minutes < end;
  if (!inside) return { active: false };
  return { active: true, endsAt: endAfter(local, to, window.to) };
}

const HALF_HOUR_MS = 30 * 60_000;

/**
 * The next instant after `local` at which its clock shows `to`. Today's occurrences first, both of them on a
 * fall-back day (shifts are 30 or 60 minutes), where nextDigestAt takes only the first and so went to tomorrow
 * from the second pass; else nextDigestAt, which resolves a skipped time to the end of the gap.
 */
function endAfter(local: DateTime, to: { hour: number; minute: number }, hhmm: string): number {
  const now = local.toMillis();
  const date = local.toISODate();
  const at = DateTime.fromObject({ year: local.year, month: local.month, day: local.day, hour: to.hour, minute: to.minute }, { zone: local.zone }).toMillis();
  const today = [-2, -1, 0, 1, 2].map((k) => at + k * HALF_HOUR_MS).filter((ms) => {
    const d = DateTime.fromMillis(ms, { zone: local.zone });
    return ms > now && d.toISODate() === date && d.hour === to.hour && d.minute === to.minute;
  });
  return today.length > 0 ? Math.min(...today) : nextDigestAt(now, local.zone.name, hhmm);
}
