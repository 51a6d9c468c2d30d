import calculateSlot from 'cluster-key-slot';
import type { Command } from 'ioredis';
import { createHash } from 'node:crypto';
import type { RedisClient } from '../../src/store/redis.ts';
import { PACKED_SCRIPTS } from '../../src/store/stories.ts';

/**
 * MONITOR-free evidence of the key layout: wraps a client's `sendCommand` (every command, pipelined or not,
 * goes through it) and checks that each multi-key command, each EVAL/EVALSHA (scripts from defineCommand
 * included) and each MULTI ... EXEC block touches one hash slot. A cross-slot use is recorded, not thrown,
 * so the flow runs to the end and the test lists every offender.
 * A script of PACKED_SCRIPTS carries several entries per call on a single Redis (their slots differ by design,
 * and on a cluster each entry is a call of its own): each entry's keys must share a slot.
 */
export interface SlotAudit {
  /** Multi-key commands, scripts with keys, and MULTI blocks checked. */
  checked: number;
  byKind: Record<string, number>;
  violations: string[];
}

export const newSlotAudit = (): SlotAudit => ({ checked: 0, byKind: {}, violations: [] });

const describeKeys = (keys: (string | Buffer)[]) => keys.map((k) => `${String(k)} (slot ${calculateSlot(k)})`).join(', ');

function checkOneSlot(audit: SlotAudit, kind: string, what: string, keys: (string | Buffer)[]) {
  audit.checked += 1;
  audit.byKind[kind] = (audit.byKind[kind] ?? 0) + 1;
  const slots = new Set(keys.map((k) => calculateSlot(k)));
  if (slots.size > 1) audit.violations.push(`${what} touches ${slots.size} slots: ${describeKeys(keys)}`);
}

/** Keys per entry of the packed scripts, by the SHA-1 EVALSHA names them with and by the source EVAL sends. */
const packed = new Map(Object.values(PACKED_SCRIPTS).flatMap((s) => [[createHash('sha1').update(s.lua).digest('hex'), s.keysPerEntry], [s.lua, s.keysPerEntry]]));

function checkEntries(audit: SlotAudit, what: string, keys: (string | Buffer)[], perEntry: number) {
  for (let i = 0; i < keys.length; i += perEntry) checkOneSlot(audit, 'script', what, keys.slice(i, i + perEntry));
}

export function auditSlots(client: RedisClient, audit: SlotAudit): void {
  const original = client.sendCommand.bind(client) as (...args: unknown[]) => unknown;
  let block: { keys: (string | Buffer)[]; names: string[] } | null = null;
  (client as { sendCommand: unknown }).sendCommand = (command: Command, ...rest: unknown[]) => {
    const name = command.name.toLowerCase();
    if (name === 'multi') {
      block = { keys: [], names: [] };
    } else if (name === 'exec' || name === 'discard') {
      if (block && block.keys.length > 0) checkOneSlot(audit, 'multi', `MULTI [${block.names.join(' ')}]`, block.keys);
      block = null;
    } else {
      const keys = command.getKeys();
      if (block) {
        block.keys.push(...keys);
        block.names.push(name);
      } else if ((name === 'evalsha' || name === 'eval') && packed.has(String(command.args[0]))) {
        checkEntries(audit, name.toUpperCase(), keys, packed.get(String(command.args[0]))!);
      } else if (keys.length > 1 || ((name === 'evalsha' || name === 'eval') && keys.length > 0)) {
        checkOneSlot(audit, name === 'evalsha' || name === 'eval' ? 'script' : 'multi-key', name.toUpperCase(), keys);
      }
    }
    return original(command, ...rest);
  };
}
