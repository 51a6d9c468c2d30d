import { randomBytes } from 'node:crypto';
import { bandBucketHashes, bucketNameHash } from '../ingest/near-duplicate.ts';
import { runCommands, type Command, type RedisClient } from './redis.ts';

/**
 * The cross-feed near-duplicate decision, as an append-only log in Redis replayed into each poller's memory.
 *
 * Every poller appends its feed's new items (id and MinHash signature; the LSH buckets are the signature's
 * bands) to one stream and reads back, in the same call, every entry appended since it last read. Each poller
 * replays the log in stream order through the same pure decision (NearIndex.apply), so all of them reach the
 * same decisions: an item merges into the first registered story of another feed that it is alike enough to,
 * among those appended before it. Two feeds carrying one event and ingested at the same instant still make one
 * story: the stream orders them, and the later one finds the earlier one whichever poller decides it, and
 * whatever their clocks say.
 *
 * Redis does no per-item work: per call an append (to the log and to its owners index) and a range read of the
 * owners, and each other poller's entry read once. Deciding in Redis (a script reading every
 * item's 16 buckets and writing 17 fields) cost Redis about three times what the rest of a new story costs it,
 * and Redis is one core shared by every poller; the replay costs each poller about 10 µs per item (measured
 * with 200,000 items in the index, most of it cache misses in the bucket table).
 */

/** Stories remembered per near-duplicate bucket: plenty for one event, bounded for a common one. */
export const BUCKET_CAP = 16;
/** Candidates compared per item at most (from all its buckets). */
export const MAX_CANDIDATES = 64;
const DAY_MS = 86_400_000;
/**
 * Near-duplicates are looked for among stories of the item's day and the day before (UTC, by the clock of the
 * poller that appended each): the same event, not the same topic. The index keeps one more day, so that an item
 * from a poller whose clock is a day behind is still decided the same way by every poller.
 */
const KEPT_DAYS = 3;
/** The log is trimmed to this much of Redis' own time: a poller starting afresh replays it. */
export const NEAR_LOG_RETENTION_MS = KEPT_DAYS * DAY_MS;
/**
 * Entries read per call at most: a poller far behind (just started) catches up in calls of bounded size (an
 * entry is one fetch's new items, typically a few KB).
 */
const READ_LIMIT = 200;
/** Items per appended entry: one entry per call, as big as a large feed, small enough to copy cheaply. */
export const ITEMS_PER_ENTRY = 200;
/** Rounds of one decision that apply no entry and decide nothing, at most, before it fails. */
const MAX_STALLS = 4;

/** The log's entries: per entry its owner (`o`) and its items (`d`). */
export const nearLogKey = (prefix: string) => `${prefix}:neardup:{nd}:items`;
/**
 * The same entries (same ids) with their owner only: the script reads this one to find which pending entries
 * are the caller's own, whose items it does not send back. Read from the log itself, every pending entry's
 * items were copied into the script and thrown away when they were the caller's: with 16 fetches of one poller
 * in flight, each call read back the other 15 calls' items (about 20 KB each), about 7 µs of Redis per new item
 * of a single poller's, more than the append.
 */
export const nearOwnersKey = (prefix: string) => `${prefix}:neardup:{nd}:owners`;

/**
 * KEYS[1] the log, KEYS[2] its owners (nearOwnersKey); ARGV[1] the last entry id the caller has applied,
 * ARGV[2] READ_LIMIT, ARGV[3] the retention (ms), ARGV[4] the caller's token, ARGV[5] this entry's owner
 * ("<token> <sequence>"), ARGV[6] its items. Answers {id appended, {id, owner, items, ...}} with every entry
 * after ARGV[1] up to and including the new one; the caller's own entries (its token) come without their items,
 * which it holds, and are not read. An entry whose items were trimmed already (the two streams are trimmed
 * apart, MINID ~) is left out, as it would be had both been trimmed. When more than ARGV[2] entries are pending
 * nothing is appended: it answers {'', the first ARGV[2] + 1 of them}, to apply and retry.
 */
const NEAR_LOG = `
local pending = redis.call('XRANGE', KEYS[2], '(' .. ARGV[1], '+', 'COUNT', tonumber(ARGV[2]) + 1)
local out, mine = {}, ARGV[4] .. ' '
local function add(id, owner, items)
  out[#out + 1] = id
  out[#out + 1] = owner
  out[#out + 1] = items
end
for i = 1, #pending do
  local id, owner = pending[i][1], pending[i][2][2]
  if string.sub(owner, 1, #mine) == mine then
    add(id, owner, '')
  else
    local e = redis.call('XRANGE', KEYS[1], id, id)
    if #e > 0 then add(id, owner, e[1][2][4]) end
  end
end
if #pending > tonumber(ARGV[2]) then return {'', out} end
local t = redis.call('TIME')
local floor = tonumber(t[1]) * 1000 - tonumber(ARGV[3])
local id = redis.call('XADD', KEYS[1], 'MINID', '~', floor, '*', 'o', ARGV[5], 'd', ARGV[6])
if type(redis.pcall('XADD', KEYS[2], 'MINID', '~', floor, id, 'o', ARGV[5])) ~= 'string' then
  -- The owners index is ahead of the log (the log alone was deleted, and Redis' clock is behind the index's
  -- newest id): the entry takes the id after the index's newest, in both.
  redis.call('XDEL', KEYS[1], id)
  local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1][1]
  local dash = string.find(top, '-', 1, true)
  id = string.sub(top, 1, dash - 1) .. '-' .. (tonumber(string.sub(top, dash + 1)) + 1)
  redis.call('XADD', KEYS[1], id, 'o', ARGV[5], 'd', ARGV[6])
  redis.call('XADD', KEYS[2], id, 'o', ARGV[5])
end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]))
add(id, ARGV[5], '')
return {id, out}`;

export interface NearItem {
  id: string;
  /** encodeSignature: 8 hex characters per row. */
  signature: string;
  /**
   * Its bucket names. Herald leaves them out: they are the signature's bands (bandKeys), and the index
   * derives their hashes from the signature's rows (bandBucketHashes), the same as hashing these names. Entries
   * appended before that list them; so do tests that choose an item's buckets.
   */
  bands?: readonly string[];
}

/** One appended entry: a feed's items, decided against everything appended before it. */
export interface NearEntry {
  feedId: string;
  /** The appending poller's clock (ms): the day an item belongs to. */
  now: number;
  /** Equal signature rows needed to merge. */
  need: number;
  items: readonly NearItem[];
}

/** Per item: registered as a story of its own, or merged into another feed's story with that many equal rows. */
export type NearDecision = { merged: false } | { merged: true; storyId: string; equalRows: number };

/**
 * Entry text: feed, clock and rows needed on lines of their own, then one line per item: id, signature and
 * the buckets when the item names them, separated by spaces. Feed ids (lower-case letters, digits and "-"),
 * story ids (hex) and bucket names hold neither. An item without named buckets is decided on its signature's
 * bands; one whose signature has no word has none either way (bandKeys gives none for it).
 */
export function encodeEntry(e: NearEntry): string {
  let text = `${e.feedId}\n${e.now}\n${e.need}`;
  for (const it of e.items) text += `\n${it.id} ${it.signature}${it.bands && it.bands.length > 0 ? ` ${it.bands.join(' ')}` : ''}`;
  return text;
}

export function decodeEntry(text: string): NearEntry {
  const lines = text.split('\n');
  const items = lines.slice(3).map((line): NearItem => {
    const [id, signature, ...bands] = line.split(' ');
    return bands.length > 0 ? { id: id!, signature: signature ?? '', bands } : { id: id!, signature: signature ?? '' };
  });
  return { feedId: lines[0]!, now: Number(lines[1]), need: Number(lines[2]), items };
}

const ROWS = 32;
/** Bucket links per item: one per band (bandKeys gives 16; more are ignored). */
const LINKS = 16;

/**
 * The replayed state: items of the last KEPT_DAYS days in log order, numbered from 0, with their signatures, and
 * per bucket a chain of the registered items in it, newest first. Pure and deterministic: the same entries in the
 * same order give the same decisions in every poller.
 *
 * Typed arrays rather than a Map of bucket names to lists of ids: a million-entry Map cost about 2.5 KB of heap
 * per item and most of an item's decision time in hashing, growing and collecting it; this costs about 700
 * bytes per item kept (measured over 100,000 items), most of it the bucket table. Bucket names are kept as 32-bit hashes: two names with one hash share a chain, which
 * only adds a candidate to compare (the decision still needs the rows to be equal).
 */
export class NearIndex {
  private ids: string[] = [];
  private feeds: string[] = [];
  private days = new Int32Array(1024);
  private sigs = new Uint32Array(1024 * ROWS);
  /** The signatures' bytes: Buffer's native hex decoding writes them in place. */
  private sigBytes = Buffer.from(this.sigs.buffer);
  /** Per item and band, the bucket's previous item link (item * LINKS + band), or -1. */
  private next = new Int32Array(1024 * LINKS);
  /** Items merged into another feed's story: the story and the equal rows (the rest were registered). */
  private merged = new Map<number, { storyId: string; equalRows: number }>();
  /**
   * Open addressing, linear probing; per slot the bucket hash and the newest link in that bucket + 1, side by
   * side: a probe of a table this size misses the cache, and one miss is cheaper than two.
   */
  private table = new Int32Array(2 * 4096);
  private used = 0;
  /** The decision's bucket slots in the table, found once for its look-up and its registration. */
  private slots = new Int32Array(LINKS);
  /** The decision's bucket hashes. */
  private hashes = new Int32Array(LINKS);
  /** Each item id's first entry in the log: an item appended again (a re-run after a crash) repeats its decision. */
  private first = new Map<string, number>();
  /** Per item, the decision that last looked at it (a candidate compared once per decision). */
  private stamp = new Int32Array(1024);
  private decisions = 0;
  private lastDay = -Infinity;

  get size(): number {
    return this.ids.length;
  }

  apply(entry: NearEntry): NearDecision[] {
    const day = Math.floor(entry.now / DAY_MS);
    if (day > this.lastDay) {
      this.lastDay = day;
      this.dropBefore(day - KEPT_DAYS + 1);
    }
    const out: NearDecision[] = [];
    for (const it of entry.items) out.push(this.decide(it, entry.feedId, day, entry.need));
    return out;
  }

  private decide(it: NearItem, feedId: string, day: number, need: number): NearDecision {
    const known = this.first.get(it.id);
    if (known !== undefined) {
      const merged = this.merged.get(known);
      return merged ? { merged: true, ...merged } : { merged: false };
    }
    const n = this.ids.length;
    this.reserve(n + 1);
    this.ids.push(it.id);
    this.feeds.push(feedId);
    this.days[n] = day;
    this.first.set(it.id, n);
    // A signature that is not 32 rows of hex (none is, from Herald) is registered without buckets: found by nothing.
    const sigOk = it.signature.length === ROWS * 8 && this.sigBytes.write(it.signature, n * ROWS * 4, ROWS * 4, 'hex') === ROWS * 4;
    let bands = 0;
    if (sigOk && it.bands === undefined) bands = bandBucketHashes(this.sigs, n * ROWS, this.hashes);
    else if (sigOk) {
      bands = Math.min(it.bands!.length, LINKS);
      for (let b = 0; b < bands; b++) this.hashes[b] = bucketNameHash(it.bands![b]!);
    }
    // Room for this item's buckets first: the slots found below stay valid.
    if (2 * (this.used + LINKS) > this.table.length / 2) this.rehash(this.table.length);
    for (let b = 0; b < bands; b++) {
      // Claimed now (an empty chain), not when linked: another of this item's buckets, new too, would otherwise
      // find the same empty slot and share the first one's chain.
      this.slots[b] = this.claim(this.hashes[b]!);
    }
    const allowed = ROWS - need;
    const mark = ++this.decisions;
    let best = -1;
    let bestEq = -1;
    let compared = 0;
    for (let b = 0; b < bands && compared < MAX_CANDIDATES; b++) {
      let link = this.table[this.slots[b]! + 1]! - 1;
      // The bucket's newest BUCKET_CAP items, whatever their day; those older than the day before are skipped.
      for (let k = 0; k < BUCKET_CAP && link >= 0 && compared < MAX_CANDIDATES; k++, link = this.next[link]!) {
        const m = (link / LINKS) | 0;
        if (this.stamp[m] === mark || this.days[m]! < day - 1) continue;
        this.stamp[m] = mark;
        compared++;
        if (this.feeds[m] === feedId) continue;
        const eq = this.equalRows(n, m, allowed);
        if (eq > bestEq) {
          best = m;
          bestEq = eq;
        }
      }
    }
    if (best >= 0) {
      // A merged item adds nothing to the buckets: a later look-alike of it is compared with the story it joined.
      const storyId = this.merged.get(best)?.storyId ?? this.ids[best]!;
      this.merged.set(n, { storyId, equalRows: bestEq });
      return { merged: true, storyId, equalRows: bestEq };
    }
    for (let b = 0; b < bands; b++) this.link(n, b, this.slots[b]!);
    return { merged: false };
  }

  /** Equal rows of items a and b, or -1 once more than `allowed` differ. */
  private equalRows(a: number, b: number, allowed: number): number {
    const s = this.sigs;
    let eq = 0;
    let miss = 0;
    for (let r = 0; r < ROWS; r++) {
      if (s[a * ROWS + r] === s[b * ROWS + r]) eq++;
      else if (++miss > allowed) return -1;
    }
    return eq;
  }

  /** The table slot (index of its hash) of a bucket hash: its own, or the empty one where it would go. */
  private find(h: number): number {
    const mask = this.table.length / 2 - 1;
    // Fibonacci hashing: the product's high bits, which depend on all of the hash's bits.
    let i = Math.imul(h, 0x9e3779b1) >>> Math.clz32(mask);
    while (this.table[2 * i] !== 0 && this.table[2 * i] !== h) i = (i + 1) & mask;
    return 2 * i;
  }

  /** The table slot of a bucket hash, taken for it (with an empty chain) when it had none. */
  private claim(h: number): number {
    const at = this.find(h);
    if (this.table[at] === 0) {
      this.table[at] = h;
      this.used++;
    }
    return at;
  }

  /** Item n's band into the bucket at table slot `at` (claimed), as its newest item. */
  private link(n: number, band: number, at: number) {
    this.next[n * LINKS + band] = this.table[at + 1]! - 1;
    this.table[at + 1] = n * LINKS + band + 1;
  }

  /** The table at `size` (twice the slots): every bucket moved with its chain. */
  private rehash(size: number) {
    const old = this.table;
    // find's probe, on locals: a move is a few instructions, and the table grows by millions of them.
    const table = new Int32Array(size * 2);
    const mask = size - 1;
    const shift = Math.clz32(mask);
    for (let i = 0; i < old.length; i += 2) {
      const h = old[i]!;
      if (h === 0) continue;
      let j = Math.imul(h, 0x9e3779b1) >>> shift;
      while (table[2 * j] !== 0) j = (j + 1) & mask;
      table[2 * j] = h;
      table[2 * j + 1] = old[i + 1]!;
    }
    this.table = table;
  }

  private reserve(items: number) {
    if (items <= this.days.length) return;
    const grow = <T extends Int32Array | Uint32Array>(a: T, per: number): T => {
      const b = new (a.constructor as new (n: number) => T)(2 * a.length);
      b.set(a.subarray(0, this.ids.length * per));
      return b;
    };
    this.days = grow(this.days, 1);
    this.stamp = grow(this.stamp, 1);
    this.sigs = grow(this.sigs, ROWS);
    this.sigBytes = Buffer.from(this.sigs.buffer);
    this.next = grow(this.next, LINKS);
  }

  /**
   * Drops the items (in log order, up to the first newer one) of days before `day`: the index is rebuilt from
   * the rest, in their order, so every bucket's chain is what replaying only them would give.
   */
  private dropBefore(day: number) {
    let k = 0;
    while (k < this.ids.length && this.days[k]! < day) k++;
    if (k === 0) return;
    const old = { ids: this.ids, feeds: this.feeds, days: this.days, sigs: this.sigs, next: this.next, merged: this.merged, table: this.table };
    const live = old.ids.length - k;
    // Each kept item's buckets (hashes, 0 for none), from the old chains: link (item, band) is in the bucket of
    // the head that reaches it.
    const bucketOf = new Int32Array(live * LINKS);
    let buckets = 0;
    for (let i = 0; i < old.table.length; i += 2) {
      if (old.table[i] === 0) continue;
      buckets++;
      for (let link = old.table[i + 1]! - 1; link >= k * LINKS; link = old.next[link]!) bucketOf[link - k * LINKS] = old.table[i]!;
    }
    const cap = Math.max(1024, 2 ** Math.ceil(Math.log2(live + 1)));
    this.ids = old.ids.slice(k);
    this.feeds = old.feeds.slice(k);
    this.days = new Int32Array(cap);
    this.days.set(old.days.subarray(k, old.ids.length));
    this.stamp = new Int32Array(cap);
    this.sigs = new Uint32Array(cap * ROWS);
    this.sigs.set(old.sigs.subarray(k * ROWS, old.ids.length * ROWS));
    this.sigBytes = Buffer.from(this.sigs.buffer);
    this.next = new Int32Array(cap * LINKS);
    this.merged = new Map();
    for (const [m, v] of old.merged) if (m >= k) this.merged.set(m - k, v);
    this.first = new Map();
    this.ids.forEach((id, m) => {
      if (!this.first.has(id)) this.first.set(id, m);
    });
    this.table = new Int32Array(2 * Math.max(4096, 2 ** Math.ceil(Math.log2(2 * buckets + 1))));
    this.used = 0;
    for (let link = 0; link < bucketOf.length; link++) {
      if (bucketOf[link] !== 0) this.link((link / LINKS) | 0, link % LINKS, this.claim(bucketOf[link]!));
    }
  }
}

/** An appended entry this poller still has to apply: its items, and once applied, their decisions. */
interface Pending {
  entry: NearEntry;
  decisions: NearDecision[] | null;
}

/** The poller's side of the log: appends, reads back, replays. One per story store. */
export function createNearLog(redis: RedisClient, prefix: string) {
  redis.defineCommand('heraldNear', { numberOfKeys: 2, lua: NEAR_LOG });
  const key = nearLogKey(prefix);
  const owners = nearOwnersKey(prefix);
  let index = new NearIndex();
  /** The last entry applied ('0-0': none; the whole log is replayed). */
  let applied = '0-0';
  let token = randomBytes(6).toString('base64url');
  let seq = 0;
  /** Counts restarts: a reply to a call sent before one is not applied. */
  let epoch = 0;
  /** Whether this poller has read the log to its end since it started (or restarted, or fell behind). */
  let synced = false;
  /** The catch-up under way: concurrent decisions wait for one reading of the log, not one each. */
  let catchingUp: Promise<void> | null = null;
  const endCatchUp = () => {
    catchingUp = null;
  };
  /** This poller's appended entries not yet applied, by owner. */
  const pending = new Map<string, Pending>();

  /** Stream ids compare as (ms, sequence). */
  const after = (a: string, b: string): boolean => {
    const [am, as] = a.split('-');
    const [bm, bs] = b.split('-');
    return Number(am) > Number(bm) || (am === bm && Number(as) > Number(bs));
  };

  /**
   * An own entry this poller holds no items for: its append's reply was lost (the connection dropped after
   * Redis ran it), so it is known only to the log. The index starts again from the whole log under a new token,
   * so that every entry, that one too, comes back with its items.
   */
  const restart = () => {
    index = new NearIndex();
    applied = '0-0';
    token = randomBytes(6).toString('base64url');
    epoch++;
    synced = false;
  };

  /** Applies a reply's entries in order (those past `applied`); false when one could not be (see restart). */
  const applyReply = (flat: string[]): boolean => {
    for (let i = 0; i < flat.length; i += 3) {
      const id = flat[i]!;
      if (!after(id, applied)) continue;
      const owner = flat[i + 1]!;
      const text = flat[i + 2]!;
      const mine = text === '' ? pending.get(owner) : undefined;
      if (text === '' && !mine) {
        restart();
        return false;
      }
      const decisions = index.apply(mine ? mine.entry : decodeEntry(text));
      if (mine) {
        mine.decisions = decisions;
        pending.delete(owner);
      } else {
        // Its own entry, read back after a restart, decides a call still waiting for it.
        const waiting = pending.get(owner);
        if (waiting) {
          waiting.decisions = decisions;
          pending.delete(owner);
        }
      }
      applied = id;
    }
    return true;
  };

  /** Reads the log from `applied` to its end, READ_LIMIT entries per call, applying them. */
  const catchUp = async () => {
    for (;;) {
      const [entries] = (await runCommands(redis, [['xrange', key, `(${applied}`, '+', 'COUNT', READ_LIMIT]])) as [[string, string[]][]];
      // Fields in the order the script appends them: o (owner), d (items).
      applyReply(entries.flatMap(([id, f]) => [id, f[1]!, f[3]!]));
      if (entries.length < READ_LIMIT) break;
    }
    synced = true;
  };

  return {
    /**
     * Appends a feed's new items and decides each: registered, or merged into another feed's story. Items of one
     * call never merge into each other (one feed's), nor into any story of their own feed.
     */
    async decide(feedId: string, now: number, need: number, items: readonly NearItem[]): Promise<NearDecision[]> {
      // Loops, not callbacks: closures made per call lose their optimized code at each full collection.
      const parts: { entry: NearEntry; result: NearDecision[] | null }[] = [];
      for (let from = 0; from < items.length; from += ITEMS_PER_ENTRY) {
        parts.push({ entry: { feedId, now, need, items: items.slice(from, from + ITEMS_PER_ENTRY) }, result: null });
      }
      // A poller that starts, restarts or falls behind first reads the log to its end (catchUp), once for all
      // its concurrent decisions; a round that still only catches up is progress, however many it takes.
      for (let stalls = 0; ; ) {
        const todo: typeof parts = [];
        for (const p of parts) if (!p.result) todo.push(p);
        if (todo.length === 0) break;
        while (!synced) {
          await (catchingUp ??= catchUp().finally(endCatchUp));
        }
        const before = applied;
        const sent: { p: (typeof parts)[number]; owner: string; mine: Pending; epoch: number }[] = [];
        const cmds: Command[] = [];
        for (const p of todo) {
          const owner = `${token} ${++seq}`;
          const mine: Pending = { entry: p.entry, decisions: null };
          pending.set(owner, mine);
          cmds.push(['heraldNear', key, owners, applied, READ_LIMIT, NEAR_LOG_RETENTION_MS, token, owner, encodeEntry(p.entry)]);
          sent.push({ p, owner, mine, epoch });
        }
        let replies: unknown[];
        try {
          replies = await runCommands(redis, cmds);
        } catch (err) {
          // Not waited for: if Redis appended one of them, it comes back without items to a later call, which
          // starts the index again (restart).
          for (const s of sent) pending.delete(s.owner);
          throw err;
        }
        for (let k = 0; k < sent.length; k++) {
          const s = sent[k]!;
          // Sent before a restart: its reply continues a log this poller no longer holds.
          if (s.epoch !== epoch) continue;
          const [appended, flat] = replies[k] as [string, string[]];
          if (applyReply(flat)) s.p.result = s.mine.decisions;
          // More entries were pending than one call reads (this poller was idle while others appended).
          if (appended === '') synced = false;
        }
        for (const s of sent) if (!s.mine.decisions) pending.delete(s.owner);
        let decidedAny = false;
        for (const p of todo) if (p.result) decidedAny = true;
        if (applied === before && !decidedAny && ++stalls >= MAX_STALLS) {
          throw new Error(`near-duplicate log: no decision after ${MAX_STALLS} rounds without progress`);
        }
      }
      const out: NearDecision[] = [];
      for (const p of parts) out.push(...p.result!);
      return out;
    },
    /** Items in this poller's index (for tests and the memory benchmark). */
    get indexed(): number {
      return index.size;
    },
  };
}
export type NearLog = ReturnType<typeof createNearLog>;
