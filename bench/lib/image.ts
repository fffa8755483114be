/**
 * What an image runs, read from its Dockerfile — so a benchmark starts a service with the very
 * flags production runs with (bench/operator, bench/realtime).
 */
/**
 * The command and environment of an image's final stage, from its Dockerfile: the JSON-form
 * `CMD` (its first word must be `node`; the rest are Node's flags and the script) and the `ENV
 * KEY=value` lines. A benchmark starts the service exactly so — with the V8 flags production
 * runs with — so what it measures is what ships.
 */
export function imageCommand(dockerfile: string): { nodeArgs: string[]; env: Record<string, string> } {
  const lines = dockerfile
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  let cmd: unknown;
  let env: Record<string, string> = {};
  for (const line of lines) {
    const m = /^(\S+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const instr = m[1]!.toUpperCase();
    const args = m[2]!;
    if (instr === 'FROM') {
      // a new stage: only the last one's counts
      env = {};
      cmd = undefined;
    } else if (instr === 'CMD') cmd = JSON.parse(args);
    else if (instr === 'ENV')
      for (const [, k, v] of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=(\S+)/g)) env[k!] = v!;
  }
  if (!Array.isArray(cmd) || cmd[0] !== 'node' || cmd.length < 2 || !cmd.every((a) => typeof a === 'string'))
    throw new Error(
      `the Dockerfile's CMD must be the JSON form ["node", …flags, script] (got ${JSON.stringify(cmd)})`,
    );
  return { nodeArgs: (cmd as string[]).slice(1), env };
}
