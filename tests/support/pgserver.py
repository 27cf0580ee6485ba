"""A throwaway PostgreSQL server for the test session: initdb + pg_ctl in a temporary directory."""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path


def _pg_bin(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not candidates:
        raise RuntimeError(f"{name} not found: install Debian's postgresql package (.ci/run does)")
    return candidates[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    """A running server; `url()` builds SQLAlchemy URLs for its databases and roles."""

    root: Path
    port: int
    superuser_password: str
    run_as: str | None
    _dbs: list[str] = field(default_factory=list)

    def url(self, database: str = "postgres", user: str = "postgres", password: str | None = None) -> str:
        pw = self.superuser_password if password is None else password
        return f"postgresql+psycopg://{user}:{pw}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str, database: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", password=self.superuser_password,
            dbname=database, autocommit=True,
        ) as conn:
            conn.execute(sql)

    def create_database(self, prefix: str = "t") -> str:
        name = f"{prefix}_{secrets.token_hex(4)}"
        self.admin(f'CREATE DATABASE "{name}"')
        self.admin("CREATE EXTENSION IF NOT EXISTS pgcrypto", database=name)
        self._dbs.append(name)
        return name

    def stop(self) -> None:
        _run([_pg_bin("pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "stop"], self.run_as,
             check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _run(cmd: list[str], run_as: str | None, check: bool = True) -> subprocess.CompletedProcess:
    preexec = None
    if run_as:
        pw = pwd.getpwnam(run_as)

        def preexec() -> None:  # drop root: PostgreSQL refuses to run as root
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)

    return subprocess.run(cmd, check=check, capture_output=True, text=True, preexec_fn=preexec)


def start() -> PgServer:
    """Start a server on a free loopback port with password auth for TCP, trust for nothing else."""
    run_as = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="lethe-pg-"))
    password = secrets.token_urlsafe(16)
    pwfile = root / "pw"
    pwfile.write_text(password)
    if run_as:
        pw = pwd.getpwnam(run_as)
        os.chown(root, pw.pw_uid, pw.pw_gid)
        os.chown(pwfile, pw.pw_uid, pw.pw_gid)
    _run([_pg_bin("initdb"), "-D", str(root / "data"), "-U", "postgres", "--auth-local=scram-sha-256",
          "--auth-host=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8"], run_as)
    port = _free_port()
    opts = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    _run([_pg_bin("pg_ctl"), "-D", str(root / "data"), "-o", opts, "-l", str(root / "log"), "-w", "start"],
         run_as)
    return PgServer(root=root, port=port, superuser_password=password, run_as=run_as)
