#!/usr/bin/env node
// Entry shim: loads the TypeScript CLI through tsx so the repository runs without a build step.
import { register } from 'tsx/esm/api';
register();
const { main } = await import('./anybios.ts');
process.exitCode = await main(process.argv.slice(2));
