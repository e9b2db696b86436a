#!/usr/bin/env node
// The `agentenv` command: the compiled CLI (npm ci builds dist/ through `prepare`). A committed
// file, so npm can link the bin before the build has run.
import '../dist/cli/main.js';
