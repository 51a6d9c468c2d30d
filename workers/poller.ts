// The poller role alone, for running Herald as one process per role (see docker-compose.yml).
import { runRoles } from '../src/runtime/process.ts';

await runRoles(['poller']);
