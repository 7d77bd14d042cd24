#!/usr/bin/env node
// Launcher for the compiled simulator (npm run build writes dist/).
import { main } from '../dist/firmware-sim/cli.js';

process.exitCode = await main(process.argv.slice(2));
