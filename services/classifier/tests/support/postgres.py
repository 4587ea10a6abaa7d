"""PostgreSQL for the tests: the machine's shared server on 127.0.0.1:5432 when it answers, else
a private one started from the local binaries; each test gets a database of its own on it.

A private server is also what a test that stops the database uses (never the shared one). initdb
refuses to run as root, so as root the private server runs as the ``postgres`` system user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg

#: The machine's shared server; TEST_SHARED_POSTGRES_URL names another (or, pointed at a closed
#: port, makes a run take the private-server path a fresh machine would).
SHARED_URL = os.environ.get("TEST_SHARED_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def pg_bin(name: str) -> str:
    """A PostgreSQL program (pg_ctl, initdb) from /usr/local/bin, PATH or the Debian layout."""
    candidates = [f"/usr/local/bin/{name}", shutil.which(name) or ""]
    candidates += sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise FileNotFoundError(f"no {name}: install PostgreSQL's server binaries")


def answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@contextlib.contextmanager
def scratch_database(server_url: str) -> Iterator[str]:
    """A new empty database on the server at ``server_url``, dropped afterwards."""
    name = f"classifier_test_{secrets.token_hex(6)}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"'.encode())
    try:
        yield with_database(server_url, name)
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


class PrivatePostgres:
    """A PostgreSQL server of the test's own, in a new folder under the system's temporary one
    (which the ``postgres`` user can reach, unlike pytest's per-user folders), on a free port."""

    def __init__(self) -> None:
        directory = Path(tempfile.mkdtemp(prefix="classifier-postgres-"))
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(directory, account.pw_uid, account.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]

    def _run(self, *command: str) -> None:
        subprocess.run(
            [*self._as_user, *command], check=True, capture_output=True, text=True, timeout=120
        )

    def init(self) -> PrivatePostgres:
        self._run(
            pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        return self

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.directory} -F"
        self._run(
            pg_bin("pg_ctl"), "-D", str(self.data), "-o", options, "-w", "-t", "60",
            "-l", str(self.directory / "server.log"), "start",
        )  # fmt: skip

    def stop(self) -> None:
        self._run(pg_bin("pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        """Stop the server if it runs and delete its folder."""
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError):
                self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres().init()
    try:
        server.start()
        yield server
    finally:
        server.remove()
