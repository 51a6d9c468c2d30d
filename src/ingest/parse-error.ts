/** Why a body is not a usable feed: a code for machines (CLI, feed health) and a message for people. */
export type ParseErrorCode =
  | 'empty-body'
  | 'too-large'
  | 'not-a-feed'
  | 'html-not-feed'
  | 'xml-entities'
  | 'too-deep'
  | 'malformed-xml'
  | 'malformed-json';

export class ParseError extends Error {
  override name = 'ParseError';
  readonly line: number | null;
  readonly column: number | null;
  constructor(
    readonly code: ParseErrorCode,
    message: string,
    at?: { line: number; column: number },
    /** For an HTML page that advertises a feed: that feed's URL. */
    readonly feedUrl: string | null = null,
  ) {
    super(message);
    this.line = at?.line ?? null;
    this.column = at?.column ?? null;
  }
}
