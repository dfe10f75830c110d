// The real glibc builds the version tests can run the oracle under, one per version the model knows: this
// machine's own, then the folders in $MALLOCSCOPE_GLIBC_BUILDS (a folder of builds), then those in .glibc/
// (scripts/build-glibc.sh SRC_DIR .glibc/VERSION makes one). A build is a folder whose dynamic loader reports a
// version the model knows.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GLIBC_VERSIONS } from '../../dist/allocator/versions.js';
import { libcLoader, libcVersion } from '../../dist/oracle/oracle.js';
import { machineGlibcVersion } from '../../dist/replay/glibc.js';

/** The environment variable naming a folder of glibc builds, one folder each (like .glibc/). */
export const BUILDS_ENV = 'MALLOCSCOPE_GLIBC_BUILDS';

export interface GlibcBuild {
  version: string;
  /** The folder for the oracle's `libc` option; "" for this machine's own glibc. */
  libc: string;
  /** Where the build is, in words. */
  where: string;
}

/** The versions the model knows, oldest first. */
export const knownVersions: readonly string[] = GLIBC_VERSIONS.map((v) => v.rules.version);

/** The build folders under `parent`, by name; none when it does not exist. */
function foldersIn(parent: string): string[] {
  if (!existsSync(parent)) return [];
  return readdirSync(parent, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => join(parent, entry.name))
    .sort();
}

/** The version a folder's loader reports, or undefined when it holds no build that can tell. */
function folderVersion(dir: string): string | undefined {
  try {
    libcLoader(dir);
    return libcVersion(dir);
  } catch {
    return undefined;
  }
}

/** Every version the model knows that has a build here, each with the first build found for it. */
export function glibcBuilds(root = fileURLToPath(new URL('../..', import.meta.url)), env: NodeJS.ProcessEnv = process.env): Map<string, GlibcBuild> {
  const builds = new Map<string, GlibcBuild>();
  const add = (version: string | undefined, libc: string, where: string) => {
    if (version !== undefined && knownVersions.includes(version) && !builds.has(version)) builds.set(version, { version, libc, where });
  };
  add(machineGlibcVersion(), '', "this machine's glibc");
  const own = env[BUILDS_ENV];
  for (const dir of own ? foldersIn(own) : []) add(folderVersion(dir), dir, `${dir} (${BUILDS_ENV})`);
  for (const dir of foldersIn(join(root, '.glibc'))) add(folderVersion(dir), dir, dir);
  return builds;
}

/** Why a version's tests cannot run here (no build of it), for `unless`; undefined when it has a build. */
export function missingBuild(version: string, builds: Map<string, GlibcBuild>): string | undefined {
  if (builds.has(version)) return undefined;
  const debian = version === '2.41' ? " (or fetch Debian 13's with scripts/debian-glibc.sh trixie .glibc/2.41)" : '';
  return `no glibc ${version} build here: build one with scripts/build-glibc.sh SRC_DIR .glibc/${version}${debian}, or name a folder of builds in ${BUILDS_ENV}`;
}
