/**
 * "Did you mean" suggestions for mistyped commands and flags, by edit
 * distance. Private to the CLI: `mod.ts` does not re-export it.
 *
 * @module
 */

/**
 * The Damerau-Levenshtein distance in its optimal string alignment form: the
 * fewest insertions, deletions, substitutions and swaps of two adjacent
 * characters that turn `a` into `b`, no substring edited twice. Compares
 * UTF-16 code units, which is exact for flag and command names (ASCII).
 *
 * @param a one string
 * @param b the other
 * @returns the distance, 0 when the strings are equal
 */
export function editDistance(a: string, b: string): number {
  // d[i][j] is the distance between the first i characters of a and the first j of b.
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length)]);
  for (let j = 0; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      }
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate `input` was most likely meant to be: the nearest by
 * {@linkcode editDistance} (ignoring case) when at most a third of the
 * input's characters (at least one; leading dashes not counted) are wrong,
 * else the only candidate that starts with an input of three or more
 * characters. Ties go to the earlier candidate.
 *
 * @param input what was typed, such as `listn`
 * @param candidates the valid names, such as `["listen", "tls"]`
 * @returns the suggestion, or `undefined` when nothing is close
 */
export function suggest(input: string, candidates: readonly string[]): string | undefined {
  const typed = input.toLowerCase();
  // A flag's dashes are not part of what was mistyped.
  const length = typed.replace(/^-+/, "").length;
  const limit = Math.max(1, Math.floor(length / 3));
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const candidate of candidates) {
    const distance = editDistance(typed, candidate.toLowerCase());
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  if (best !== undefined || length < 3) return best;
  const extending = candidates.filter((c) => c.toLowerCase().startsWith(typed));
  return extending.length === 1 ? extending[0] : undefined;
}
