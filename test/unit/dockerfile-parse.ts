/**
 * Just enough of the Dockerfile and .dockerignore grammars for test/unit/dockerfile.test.ts:
 * line continuations, comments, `--flag=value` options, stages with `AS` names, global ARG
 * defaults; and Docker's ignore rules (last matching pattern wins, `!` re-includes, a pattern that
 * matches a parent directory matches everything below it, `**` spans directories).
 */
export interface Instruction {
  readonly keyword: string;
  /** The text after the keyword, options included. */
  readonly raw: string;
  /** The text after the keyword and its `--flag` options. */
  readonly rest: string;
  /** `rest` split on whitespace (shell form). */
  readonly args: readonly string[];
  readonly flags: Readonly<Record<string, string>>;
  readonly line: number;
}

export interface Stage {
  readonly from: string;
  readonly name: string | undefined;
  readonly instructions: Instruction[];
}

export interface Dockerfile {
  /** Defaults of the ARGs declared before the first FROM. */
  readonly args: Readonly<Record<string, string>>;
  readonly stages: Stage[];
}

export function parseDockerfile(text: string): Dockerfile {
  const logical: { text: string; line: number }[] = [];
  let pending: { text: string; line: number } | undefined;
  text.split('\n').forEach((physical, index) => {
    const trimmed = physical.trim();
    if (!pending && (trimmed === '' || trimmed.startsWith('#'))) return;
    if (pending && trimmed.startsWith('#')) return; // comments inside a continuation are dropped
    const continued = trimmed.endsWith('\\');
    const part = continued ? trimmed.slice(0, -1) : trimmed;
    pending = pending ? { text: `${pending.text} ${part}`, line: pending.line } : { text: part, line: index + 1 };
    if (!continued) {
      logical.push(pending);
      pending = undefined;
    }
  });
  const args: Record<string, string> = {};
  const stages: Stage[] = [];
  for (const { text: l, line } of logical) {
    const [keyword = '', ...restWords] = l.split(/\s+/);
    const raw = restWords.join(' ');
    const flags: Record<string, string> = {};
    const words = [...restWords];
    while (words[0]?.startsWith('--')) {
      const [k, v = 'true'] = words.shift()!.slice(2).split(/=(.*)/s);
      flags[k!] = v;
    }
    const instruction: Instruction = { keyword: keyword.toUpperCase(), raw, rest: words.join(' '), args: words, flags, line };
    if (instruction.keyword === 'FROM') {
      const asIndex = words.findIndex((w) => w.toUpperCase() === 'AS');
      stages.push({ from: words[0]!, name: asIndex >= 0 ? words[asIndex + 1] : undefined, instructions: [] });
    } else if (stages.length === 0 && instruction.keyword === 'ARG') {
      const [k, v = ''] = instruction.rest.split(/=(.*)/s);
      args[k!] = v;
    } else if (stages.length > 0) {
      stages.at(-1)!.instructions.push(instruction);
    }
  }
  return { args, stages };
}

function globToRegExp(pattern: string): RegExp {
  let re = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*' && pattern[i + 1] === '*') {
      re += '.*';
      i++;
      if (pattern[i + 1] === '/') i++;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** Whether Docker leaves `path` (relative to the context) out of the build context. */
export function ignoredByDocker(dockerignore: string, path: string): boolean {
  const rules = dockerignore
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const exclude = l.startsWith('!');
      const pattern = (exclude ? l.slice(1) : l).replace(/^\/+/, '').replace(/\/+$/, '');
      return { include: exclude, re: globToRegExp(pattern) };
    });
  // The path and each of its parent directories: a pattern matching a parent matches the path.
  const parts = path.split('/');
  const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
  let ignored = false;
  for (const rule of rules) {
    if (candidates.some((c) => rule.re.test(c))) ignored = !rule.include;
  }
  return ignored;
}
