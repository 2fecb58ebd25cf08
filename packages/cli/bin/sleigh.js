#!/usr/bin/env node
// The sleigh command. Built code lives in dist/ (npm ci builds it; so does npm run build).
import { main } from '../dist/main.js';

// A reader that went away (`sleigh jobs failed email | head`): the rest goes nowhere, quietly.
process.stdout.on('error', (error) => {
  if (error.code !== 'EPIPE') throw error;
});

process.exitCode = await main(process.argv.slice(2));
