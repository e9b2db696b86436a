import { describe, expect, it } from 'vitest';
import { containerArgv, ImagePullError } from './images.ts';

const runtime = { projectImage: 'ghcr.io/agentenv-io/agentenv', nodeBinary: '/usr/bin/node', repoRoot: '/repo/' };
const CLI = ['/usr/bin/node', '/repo/src/cli/main.ts'];

describe('containerArgv: the runner image', () => {
  const cases: Array<{ rule: string; container: Record<string, unknown>; argv: string[] }> = [
    { rule: 'the default template\'s `agentenv runner` runs the CLI', container: { image: 'ghcr.io/agentenv-io/agentenv-runner:dev', command: ['agentenv', 'runner'] }, argv: [...CLI, 'runner'] },
    { rule: 'no command runs the image\'s CMD, `runner`', container: { image: 'ghcr.io/agentenv-io/agentenv-runner:0.1.0' }, argv: [...CLI, 'runner'] },
    { rule: 'args alone follow the entrypoint', container: { image: 'ghcr.io/agentenv-io/agentenv-runner@sha256:00', args: ['runner', '--idle-timeout', '5s'] }, argv: [...CLI, 'runner', '--idle-timeout', '5s'] },
    { rule: 'the entrypoint\'s path is the CLI', container: { image: 'ghcr.io/agentenv-io/agentenv-runner:dev', command: ['/usr/local/bin/agentenv'], args: ['runner'] }, argv: [...CLI, 'runner'] },
    { rule: 'any other command runs as written', container: { image: 'ghcr.io/agentenv-io/agentenv-runner:dev', command: ['/bin/bash', '-c', 'rg x'] }, argv: ['/bin/bash', '-c', 'rg x'] },
  ];
  it.each(cases)('$rule', ({ container, argv }) => {
    expect(containerArgv({ name: 'session', ...container }, runtime)).toEqual(argv);
  });

  it('follows the project image\'s name, and other images still cannot be pulled', () => {
    expect(containerArgv({ name: 's', image: 'registry.local/agentenv-runner:1', command: ['agentenv', 'runner'] }, { ...runtime, projectImage: 'registry.local/agentenv:1' })).toEqual([...CLI, 'runner']);
    expect(() => containerArgv({ name: 's', image: 'ghcr.io/agentenv-io/agentenv-runner-extra:1' }, runtime)).toThrow(ImagePullError);
  });
});
