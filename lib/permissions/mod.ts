/**
 * Deno permissions scoped to the job: {@linkcode requirePermissions} checks
 * what a job needs before it starts and names every missing flag in one
 * line; {@linkcode revokeExcept} gives up the rest once start-up is done.
 * Never prompts.
 *
 * Owns: permission needs and flags. Imports: nothing else of sockit.
 *
 * @example Name the flag a need takes
 * ```ts
 * import { flagFor } from "@sockit/sockit/permissions";
 * import { deepEqual } from "node:assert/strict";
 *
 * deepEqual(flagFor({ name: "run", command: "uname" }), "--allow-run=uname");
 * ```
 *
 * @module
 */

export {
  flagFor,
  type FlagForOptions,
  MissingPermissionError,
  missingPermissions,
  type PermissionNeed,
  type PermissionNeedName,
  requirePermissions,
  type RequirePermissionsOptions,
  revokeExcept,
  type RevokeExceptOptions,
  type RevokeSummary,
  type SkippedNarrowing,
  type SysKind,
} from "./permissions.ts";
