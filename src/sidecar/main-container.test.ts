import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { environHas, MainContainer, parentPid, treeRoots } from './main-container.ts';

const silent = { error: () => {}, warn: () => {}, info: () => {}, debug: () => {} };
const environ = (...entries: string[]): Buffer => Buffer.from(entries.map((e) => `${e}\0`).join(''));
const entry = Buffer.from('ANTHROPIC_WORK_ID=work_1');

describe('environ matching', () => {
  it('matches the entry anywhere in the block', () => {
    expect(environHas(environ('ANTHROPIC_WORK_ID=work_1', 'PATH=/bin'), entry)).toBe(true);
    expect(environHas(environ('PATH=/bin', 'ANTHROPIC_WORK_ID=work_1'), entry)).toBe(true);
    expect(environHas(Buffer.from('PATH=/bin\0ANTHROPIC_WORK_ID=work_1'), entry)).toBe(true); // no final NUL
  });

  it('matches whole entries only: not a longer id, a longer name, or a value containing it', () => {
    expect(environHas(environ('ANTHROPIC_WORK_ID=work_12'), entry)).toBe(false);
    expect(environHas(environ('X_ANTHROPIC_WORK_ID=work_1'), entry)).toBe(false);
    expect(environHas(environ('NOTE=ANTHROPIC_WORK_ID=work_1'), entry)).toBe(false);
    expect(environHas(Buffer.alloc(0), entry)).toBe(false); // a zombie
  });
});

describe('process tree', () => {
  it('reads the parent pid after the command name, even one with spaces and parentheses', () => {
    expect(parentPid('42 (node) S 7 42 42 0 -1')).toBe(7);
    expect(parentPid('43 (my (odd) cmd) S 42 43 43 0 -1')).toBe(42);
  });

  it('finds the roots: processes whose parent is outside the set', () => {
    expect(treeRoots([{ pid: 10, ppid: 1 }, { pid: 11, ppid: 10 }, { pid: 12, ppid: 11 }, { pid: 20, ppid: 3 }])).toEqual([10, 20]);
  });
});

describe('MainContainer on a /proc tree', () => {
  let proc: string;
  afterEach(() => rmSync(proc, { recursive: true, force: true }));

  function fakeProc(processes: Array<{ pid: number; ppid: number; env: string[] }>): string {
    proc = mkdtempSync(join(tmpdir(), 'agentenv-proc-'));
    for (const p of processes) {
      mkdirSync(join(proc, String(p.pid)));
      writeFileSync(join(proc, String(p.pid), 'environ'), environ(...p.env));
      writeFileSync(join(proc, String(p.pid), 'stat'), `${p.pid} (sh) S ${p.ppid} 1 1 0 -1`);
    }
    mkdirSync(join(proc, 'self'));
    return proc;
  }

  it("finds the main container's processes and skips itself and other containers", () => {
    const root = fakeProc([
      { pid: 5, ppid: 0, env: ['ANTHROPIC_WORK_ID=work_1'] },
      { pid: 6, ppid: 5, env: ['ANTHROPIC_WORK_ID=work_1', 'HOME=/'] },
      { pid: 7, ppid: 0, env: ['ANTHROPIC_WORK_ID=work_2'] },
      { pid: 8, ppid: 0, env: ['ANTHROPIC_WORK_ID=work_1'] }, // "itself"
      { pid: 9, ppid: 0, env: ['PATH=/bin'] },
    ]);
    const main = new MainContainer({ workId: 'work_1', log: silent, procRoot: root, selfPid: 8 });
    expect(main.seen).toBe(false);
    expect(main.processes()).toEqual([{ pid: 5, ppid: 0 }, { pid: 6, ppid: 5 }]);
    expect(main.seen).toBe(true);
    expect(main.running()).toBe(true);
  });

  it('counts the container gone once none of its processes is left', () => {
    const root = fakeProc([{ pid: 5, ppid: 0, env: ['ANTHROPIC_WORK_ID=work_1'] }]);
    const main = new MainContainer({ workId: 'work_1', log: silent, procRoot: root, selfPid: 1 });
    expect(main.running()).toBe(true);
    writeFileSync(join(root, '5', 'environ'), ''); // exited, not yet reaped
    expect(main.running()).toBe(false);
    expect(main.seen).toBe(true);
  });
});
