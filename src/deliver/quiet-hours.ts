import { DateTime } from 'luxon';
import { parseLocalTime } from '../digest/schedule.ts';

/**
 * Whether `now` falls inside the reader's local quiet hours, and when they end. The window may wrap
 * midnight (22:00-07:00). Local times a DST change skips or repeats follow Luxon's resolution, and the
 * end is always computed forward from `now`, so a held alert is never released before the window closes.
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
  const endDay = start < end || minutes < end ? local.startOf('day') : local.startOf('day').plus({ days: 1 });
  const endsAt = endDay.set({ hour: to.hour, minute: to.minute }).toMillis();
  return { active: true, endsAt: endsAt > now ? endsAt : now + 60_000 };
}
