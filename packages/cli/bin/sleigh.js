#!/usr/bin/env node
// The sleigh command. Built code lives in dist/ (npm ci builds it; so does npm run build).
import { main } from '../dist/main.js';

process.exitCode = await main(process.argv.slice(2));
