// Loaded into a dispatcher with `--import` by BENCH_PROF=alloc: samples every allocation, including the
// objects garbage collection later freed (what --heap-prof leaves out, and what costs GC time), and writes
// the profile to /tmp/prof-delivery when the process exits.
import { mkdirSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const session = new Session();
session.connect();
session.post('HeapProfiler.enable');
session.post('HeapProfiler.startSampling', { samplingInterval: 16384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true });
process.on('exit', () => {
  // A session on the main thread answers synchronously, so this runs to the end inside the exit handler.
  session.post('HeapProfiler.stopSampling', (err, result) => {
    if (err) return;
    mkdirSync('/tmp/prof-delivery', { recursive: true });
    writeFileSync(`/tmp/prof-delivery/Alloc.${process.pid}.heapprofile`, JSON.stringify(result.profile));
  });
});
