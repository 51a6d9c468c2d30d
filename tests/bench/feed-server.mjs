// A stand-in publisher for the ingest benchmark, in its own process so that serving the bytes does not
// compete with the pipeline being measured. Prints its port, then serves `feeds.json`'s documents.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';

const docs = JSON.parse(readFileSync(process.argv[2], 'utf8')).map((b) => Buffer.from(b, 'base64'));
const server = createServer((req, res) => {
  const path = req.url ?? '/';
  if (path.startsWith('/poll/')) {
    if (req.headers['if-none-match'] === '"same"') return void res.writeHead(304, { etag: '"same"' }).end();
    return void res.writeHead(200, { etag: '"same"' }).end(docs[0]);
  }
  const doc = docs[Number(path.slice(1).split('.')[0]) % docs.length];
  res.writeHead(200, { 'content-type': 'application/rss+xml; charset=utf-8' }).end(doc);
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => process.stdout.write(`${server.address().port}\n`));
process.on('disconnect', () => process.exit(0));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
