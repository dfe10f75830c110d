// Whether a command colours its output, decided one way for every command (explain's sentences, the progress
// bar): --color/--no-color first, then FORCE_COLOR, NO_COLOR and TERM=dumb, then whether it is a terminal.

/** What the user asked for on the command line: true for --color, false for --no-color, else undefined. */
export type ColourFlag = boolean | undefined;

interface Stream {
  isTTY?: boolean;
}

/**
 * The conventions, in this order (the first that applies decides):
 * - `--color` / `--no-color` on the command line;
 * - `FORCE_COLOR` set and not empty: `0` or `false` means no colour, anything else colour, even through a pipe;
 * - `NO_COLOR` set and not empty (https://no-color.org): no colour;
 * - `TERM=dumb`: no colour;
 * - otherwise colour when the stream is a terminal.
 */
export function useColour(stream: Stream, flag: ColourFlag = undefined, env: NodeJS.ProcessEnv = process.env): boolean {
  if (flag !== undefined) return flag;
  const force = env.FORCE_COLOR;
  if (force !== undefined && force !== '') return force !== '0' && force.toLowerCase() !== 'false';
  if (env.NO_COLOR) return false;
  if (env.TERM === 'dumb') return false;
  return Boolean(stream.isTTY);
}

/**
 * Commander gives `color: true` for --color, `color: false` for --no-color and leaves it out otherwise
 * (no default is declared, so that "not given" stays distinguishable).
 */
export function colourFlag(options: { color?: boolean }): ColourFlag {
  return options.color;
}
