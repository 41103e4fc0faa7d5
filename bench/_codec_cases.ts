/**
 * The cases of `bench/codec_bench.ts`, shared with `bench/run.ts`, which
 * turns the bench's times into GB/s.
 *
 * @module
 */

/** Payload bytes every codec bench iteration moves: 1 MiB. */
export const BYTES_PER_ITERATION = 1024 * 1024;

/** Payload sizes measured, with the labels used in bench names and groups. */
export const PAYLOAD_SIZES: readonly { label: string; size: number }[] = [
  { label: "64 B", size: 64 },
  { label: "4 KiB", size: 4 * 1024 },
  { label: "64 KiB", size: 64 * 1024 },
];
