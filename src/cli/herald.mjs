#!/usr/bin/env node
// Entry point of the `herald` command and `npm start`. tsx runs the TypeScript sources directly,
// so starting Herald needs no build step.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('./main.ts');
const code = await main(process.argv.slice(2));
// -1: a long-running command; the process lives until its signal handlers end it.
if (code >= 0) process.exitCode = code;
