import type { z } from 'zod';
import { describeZodError } from './schemas.ts';

/** An error the client caused or may act on: its status and message go back as they are. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly extra: Record<string, unknown> = {},
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** Validates a body (or query) with zod; a failure is a 400 naming every failing field. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const parsed = schema.safeParse(body ?? {});
  if (!parsed.success) {
    const d = describeZodError(parsed.error);
    throw new HttpError(400, d.error, { fields: d.fields });
  }
  return parsed.data;
}
