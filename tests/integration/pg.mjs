// A throwaway PostgreSQL cluster for the tests that need a real server (tables_pg, store_pg):
// initdb into a temp dir, pg_ctl on a free loopback port (socket in the temp dir, fsync off), as
// the postgres user when run as root (initdb refuses root). Queries go through psql (no client
// library in node). startCluster() also stops and removes it when the test process exits, even
// after a failure.

import { execFile, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { makeTempDir, deadPort } from './lib.mjs';

const run = promisify(execFile);

export function pgBinDir() {
  const root = '/usr/lib/postgresql';
  const versions = fs.existsSync(root) ? fs.readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) {
    const bin = path.join(root, v, 'bin');
    if (fs.existsSync(path.join(bin, 'initdb')) && fs.existsSync(path.join(bin, 'pg_ctl'))) return bin;
  }
  throw new Error('PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (deploy/install-deps.sh --test installs them)');
}

export class Cluster {
  constructor() {
    this.bin = pgBinDir();
    this.dir = makeTempDir('agate-pg-');
    this.data = path.join(this.dir, 'data');
    this.log = path.join(this.dir, 'server.log');
    this.port = 0;
    this.running = false;
    // initdb refuses to run as root: run the server tools as the postgres user then.
    this.asUser = process.getuid && process.getuid() === 0 ? 'postgres' : null;
    if (this.asUser) {
      const uid = Number(execFileSync('id', ['-u', this.asUser]).toString().trim());
      const gid = Number(execFileSync('id', ['-g', this.asUser]).toString().trim());
      fs.chownSync(this.dir, uid, gid);
    }
  }

  tool(name, args, opts = {}) {
    const bin = path.join(this.bin, name);
    const [cmd, argv] = this.asUser ? ['runuser', ['-u', this.asUser, '--', bin, ...args]] : [bin, args];
    return run(cmd, argv, { timeout: 60_000, ...opts });
  }

  async init() {
    await this.tool('initdb', ['-D', this.data, '-U', 'agate', '--auth=trust', '-E', 'UTF8', '--locale=C', '-N']);
    this.port = await deadPort();
    await this.start();
  }

  async start() {
    const opts = `-p ${this.port} -k ${this.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off`;
    await this.tool('pg_ctl', ['-D', this.data, '-l', this.log, '-w', '-t', '30', '-o', opts, 'start']);
    this.running = true;
  }

  async stop(mode = 'fast') {
    if (!this.running) return;
    await this.tool('pg_ctl', ['-D', this.data, '-m', mode, '-w', '-t', '30', 'stop']);
    this.running = false;
  }

  get dsn() {
    return this.dsnFor('postgres');
  }

  /** The DSN of database db of this cluster (user agate, trust auth, loopback TCP). */
  dsnFor(db) {
    return `postgresql://agate@127.0.0.1:${this.port}/${db}`;
  }

  /** Runs one SQL statement (in database db); returns rows as arrays of strings (unaligned, tuples only). */
  async sql(q, db = 'postgres') {
    const { stdout } = await run(path.join(this.bin, 'psql'),
      ['-h', '127.0.0.1', '-p', String(this.port), '-U', 'agate', '-d', db, '-AtqX', '-F', '\t', '-v', 'ON_ERROR_STOP=1', '-c', q],
      { timeout: 30_000, maxBuffer: 64 * 1024 * 1024 });
    return stdout.split('\n').filter((l) => l !== '').map((l) => l.split('\t'));
  }

  destroySync() {
    if (this.running) {
      try {
        const bin = path.join(this.bin, 'pg_ctl');
        const [cmd, argv] = this.asUser ? ['runuser', ['-u', this.asUser, '--', bin]] : [bin, []];
        execFileSync(cmd, [...argv, '-D', this.data, '-m', 'immediate', '-w', 'stop'], { stdio: 'ignore', timeout: 20_000 });
      } catch { /* already down */ }
      this.running = false;
    }
    if (!process.env.AGATE_IT_KEEP) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A new cluster, initialised and running; destroyed at process exit whatever happened. */
export async function startCluster() {
  const pg = new Cluster();
  process.on('exit', () => pg.destroySync());
  await pg.init();
  return pg;
}
