/**
 * Policies from a branch of a git repository, through the `git` command (no git library): a bare
 * single-branch clone in a working directory of this process, `git fetch` of the branch at each
 * poll, and for each new commit its tree written to a fresh directory (a temporary index:
 * `read-tree` + `checkout-index`), read, and deleted again. The compiled set lives in memory, so
 * nothing of a checkout is needed once it is read.
 *
 * Every command runs with `execFile` (no shell), a timeout, `GIT_TERMINAL_PROMPT=0` (a missing
 * credential fails instead of waiting for a terminal) and the URL after `--`. Credentials belong
 * to git itself (a credential helper, an SSH agent); Warden's config takes none.
 *
 * SECURITY: a URL may still carry `user:password@`; {@link redactUrl} removes it from everything
 * shown (admin answer, logs, error messages, which git itself may fill with the URL).
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { WardenError } from '@warden/core';

/** Options of {@link GitPolicySource.open}. */
export interface GitPolicySourceOptions {
  /** A URL (`https://`, `ssh://`, `git@host:path`, `file://`) or a local path. */
  readonly url: string;
  /** The branch to follow; undefined: the repository's default branch (its HEAD). */
  readonly branch: string | undefined;
  /** Where the policies are inside the repository (`''`: its root). */
  readonly subDir: string;
  /** The parent of this process's working directory (undefined: the OS temporary directory). */
  readonly checkoutDir: string | undefined;
  /** Longest any one git command may run (ms). */
  readonly operationTimeoutMs: number;
  /** The git executable (default `git` on PATH). */
  readonly gitPath?: string;
}

/** `url` without the `user:password@` part. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/i, '$1***@');
}

/** `text` with any `scheme://user:password@` credential removed. */
function redactText(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/)[^/@\s'"]*@/gi, '$1***@');
}

/** The failure of a git command: `ERR_POLICY_SOURCE_UNAVAILABLE` with git's last error line. */
function gitError(args: readonly string[], err: unknown, stderr: string): WardenError {
  const e = err as NodeJS.ErrnoException & { killed?: boolean; signal?: string | null };
  const what = `git ${args.find((a) => !a.startsWith('-')) ?? ''}`.trim();
  let why: string;
  if (e.code === 'ENOENT') why = 'the `git` command is not installed';
  else if (e.killed === true || e.signal === 'SIGTERM') why = 'timed out';
  else {
    const lines = stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '');
    const fatal = lines.filter((l) => /^(fatal|error):/i.test(l));
    why = redactText((fatal[fatal.length - 1] ?? lines[lines.length - 1] ?? e.message).replace(/\s+/g, ' '));
  }
  return new WardenError('ERR_POLICY_SOURCE_UNAVAILABLE', `\`${what}\` failed: ${why}`, { cause: err });
}

/** One followed branch of one repository. */
export class GitPolicySource {
  private constructor(
    private readonly options: GitPolicySourceOptions,
    private readonly workDir: string,
    private readonly repo: string,
    /** The followed branch (as configured, or the default one found at clone). */
    readonly branch: string,
  ) {}

  /**
   * Clones the repository (bare, the one branch) into a new working directory of this process.
   * Throws `ERR_POLICY_SOURCE_UNAVAILABLE` when git cannot (the directory is removed again).
   */
  static async open(options: GitPolicySourceOptions): Promise<GitPolicySource> {
    const parent = options.checkoutDir ?? tmpdir();
    await mkdir(parent, { recursive: true });
    // One directory per process: workers of one broker (and replicas sharing a volume) never collide.
    const workDir = await mkdtemp(join(parent, `warden-policies-${process.pid}-`));
    const repo = join(workDir, 'repo.git');
    try {
      const branchArgs = options.branch !== undefined ? ['--branch', options.branch] : [];
      await runGit(options, ['clone', '--quiet', '--bare', '--single-branch', '--no-tags', ...branchArgs, '--', options.url, repo]);
      const branch = options.branch ?? (await runGit(options, [`--git-dir=${repo}`, 'symbolic-ref', '--short', 'HEAD'])).trim();
      return new GitPolicySource(options, workDir, repo, branch);
    } catch (err) {
      await rm(workDir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Fetches the branch and returns its head commit (full hash). */
  async fetchHead(): Promise<string> {
    await runGit(this.options, [`--git-dir=${this.repo}`, 'fetch', '--quiet', '--prune', '--no-tags', 'origin', `+refs/heads/${this.branch}:refs/heads/${this.branch}`]);
    return this.head();
  }

  /** The head commit of the branch as last fetched. */
  async head(): Promise<string> {
    return (await runGit(this.options, [`--git-dir=${this.repo}`, 'rev-parse', '--verify', `refs/heads/${this.branch}^{commit}`])).trim();
  }

  /**
   * Writes `commit`'s tree to a fresh directory, calls `read` with the policy directory inside it
   * (`subDir`), and deletes the directory again, whatever `read` did.
   */
  async withCheckout<T>(commit: string, read: (policyDir: string) => T): Promise<T> {
    const dir = await mkdtemp(join(this.workDir, 'checkout-'));
    try {
      const env = { GIT_INDEX_FILE: join(dir, '.index') };
      const tree = join(dir, 'tree');
      await mkdir(tree);
      await runGit(this.options, [`--git-dir=${this.repo}`, 'read-tree', commit], env);
      await runGit(this.options, [`--git-dir=${this.repo}`, `--work-tree=${tree}`, 'checkout-index', '--all', '--force'], env);
      return read(resolve(tree, this.options.subDir));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /** Removes the working directory. */
  async close(): Promise<void> {
    await rm(this.workDir, { recursive: true, force: true });
  }
}

function runGit(options: GitPolicySourceOptions, args: readonly string[], env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolveRun, reject) => {
    execFile(
      options.gitPath ?? 'git',
      args,
      {
        timeout: options.operationTimeoutMs,
        maxBuffer: 4 * 1024 * 1024,
        env: { ...process.env, GIT_TERMINAL_PROMPT: '0', LC_ALL: 'C', ...env },
        windowsHide: true,
      },
      (err, stdout, stderr) => {
        if (err !== null) reject(gitError(args, err, String(stderr)));
        else resolveRun(String(stdout));
      },
    );
  });
}
