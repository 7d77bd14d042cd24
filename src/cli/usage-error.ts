/** A command line that does not parse: the `edgelog` command prints it with the usage and exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}
