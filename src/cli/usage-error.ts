import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A command line that does not parse: the `edgelog` command prints it with the usage and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

type Options = NonNullable<ParseArgsConfig['options']>;
type Parsed<O extends Options> = ReturnType<typeof parseArgs<{ args: string[]; options: O; strict: true; allowPositionals: true }>>;

/**
 * A command's flags and arguments (node:util parseArgs, strict, positionals allowed); a flag it
 * does not know or a missing value is a UsageError that shows the command's usage.
 */
export function parseCommandLine<O extends Options>(argv: string[], options: O, usage: string): Parsed<O> {
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: true });
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n\n${usage}`);
  }
}
