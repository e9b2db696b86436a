import { execFileSync } from 'node:child_process';

/** Kernel constants the benchmarks need to turn /proc figures into seconds and bytes. */
export const sysconf = {
  clockTicks: Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100,
  pageSize: Number(execFileSync('getconf', ['PAGESIZE']).toString().trim()) || 4096,
};
