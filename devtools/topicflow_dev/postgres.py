"""A private PostgreSQL 15 cluster on loopback, for development and tests.

Everything lives under one folder (`<dev dir>/postgres`):

    data/         the cluster (initdb), with a role and a database `topicflow`
    run/          the unix socket, so nothing depends on /var/run/postgresql
    server.log    the server's log

PostgreSQL refuses to run as root, so when we are root every server-side
command runs as the Debian `postgres` system user, who owns the folder.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

from topicflow_dev.errors import DevEnvError

BIN = Path(os.environ.get("TOPICFLOW_DEV_PG_BIN", "/usr/lib/postgresql/15/bin"))
HOST = "127.0.0.1"
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 30

ROLE = "topicflow"
PASSWORD = "topicflow"
DATABASE = "topicflow"
SYSTEM_USER = "postgres"


class Cluster:
    """The dev cluster whose files live in `base`, listening on `port`."""

    def __init__(self, base: Path, port: int) -> None:
        self.base = base
        self.port = port
        self.data = base / "data"
        self.run_dir = base / "run"
        self.log = base / "server.log"

    @property
    def url(self) -> str:
        return f"postgres://{ROLE}:{PASSWORD}@{HOST}:{self.port}/{DATABASE}"

    # -- state ---------------------------------------------------------------

    def pid(self) -> int | None:
        """The postmaster's pid, or None. A stale postmaster.pid is removed."""
        running = self._postmaster()
        return None if running is None else running[0]

    def _postmaster(self) -> tuple[int, int] | None:
        """(pid, port) of the running postmaster, from its lock file; None if not running.

        A stale lock file is removed.
        """
        lock = self.data / "postmaster.pid"
        try:
            # Line 1 is the pid, line 4 the port.
            lines = lock.read_text().splitlines()
            pid, port = int(lines[0]), int(lines[3])
        except (OSError, ValueError, IndexError):
            return None
        if _is_postgres_process(pid):
            return pid, port
        # Left behind by a killed server whose pid now belongs to someone else
        # (a container restart): postgres itself would refuse to start.
        lock.unlink(missing_ok=True)
        return None

    # -- start/stop ----------------------------------------------------------

    def start(self) -> bool:
        """Start the cluster unless it runs already (initialising it the first time).

        Returns True when this call started it, False when it was running.
        """
        running = self._postmaster()
        if running is not None:
            if running[1] != self.port:
                raise DevEnvError(
                    f"the dev PostgreSQL is running on port {running[1]}, not {self.port}; "
                    "stop it first (topicflow dev down) or set TOPICFLOW_DEV_PG_PORT back"
                )
            # Ours; it may still be starting (an interrupted `up`): wait for it.
            self._wait_tcp()
            return False
        if _port_open(self.port):
            raise DevEnvError(
                f"port {self.port} on {HOST} is used by another process, not the dev "
                "PostgreSQL; stop it or set TOPICFLOW_DEV_PG_PORT"
            )
        self._check_binaries()
        self._prepare_folders()
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        self._pg_ctl_start()
        self._ensure_role_and_database()
        return True

    def stop(self) -> bool:
        """Stop the cluster (fast shutdown). Returns False if it was not running."""
        if self.pid() is None:
            return False
        self._pg_ctl_stop()
        return True

    # -- steps ---------------------------------------------------------------

    def _check_binaries(self) -> None:
        for program in ("initdb", "pg_ctl", "postgres", "pg_isready", "psql"):
            if not (BIN / program).exists():
                raise DevEnvError(
                    f"{BIN / program} not found; install the Debian package postgresql-15 "
                    "(or set TOPICFLOW_DEV_PG_BIN to its bin folder)"
                )

    def _prepare_folders(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            return
        user = _system_user()
        # The server (running as `postgres`) writes its log and socket here.
        for path in (self.base, self.run_dir):
            os.chown(path, user.pw_uid, user.pw_gid)
        if self.log.exists():
            os.chown(self.log, user.pw_uid, user.pw_gid)
        _check_traversable(self.base.parent)

    def _initdb(self) -> None:
        # Initialise beside the final folder and rename at the end, so an
        # interrupted initdb never leaves a half cluster that looks complete.
        scratch = self.base / "data.initdb"
        shutil.rmtree(scratch, ignore_errors=True)
        result = self._run(
            [
                str(BIN / "initdb"),
                "-D",
                str(scratch),
                "-U",
                SYSTEM_USER,
                "--auth-host=scram-sha-256",
                "--auth-local=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-instructions",
            ]
        )
        if result.returncode != 0:
            self.log.write_text(result.stdout + result.stderr)
            shutil.rmtree(scratch, ignore_errors=True)
            raise DevEnvError(f"initdb failed (exit code {result.returncode}); see {self.log}")
        scratch.rename(self.data)

    def _pg_ctl_start(self) -> None:
        # Settings go on the command line rather than into postgresql.conf, so
        # a changed port takes effect without touching the cluster. pg_ctl
        # hands -o to a shell, hence the quoting.
        options = " ".join(
            [
                "-p",
                str(self.port),
                "-k",
                shlex.quote(str(self.run_dir)),
                "-c",
                f"listen_addresses={HOST}",
            ]
        )
        result = self._run(
            [
                str(BIN / "pg_ctl"),
                "start",
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "-o",
                options,
            ]
        )
        if result.returncode != 0:
            raise DevEnvError(
                f"PostgreSQL did not start within {START_TIMEOUT_S} s "
                f"(pg_ctl exit code {result.returncode}); see {self.log}"
            )
        self._wait_tcp()

    def _pg_ctl_stop(self) -> None:
        result = self._run(
            [
                str(BIN / "pg_ctl"),
                "stop",
                "-D",
                str(self.data),
                "-m",
                "fast",
                "-w",
                "-t",
                str(STOP_TIMEOUT_S),
            ]
        )
        if result.returncode != 0:
            raise DevEnvError(
                f"PostgreSQL did not stop within {STOP_TIMEOUT_S} s "
                f"(pg_ctl exit code {result.returncode}); see {self.log}"
            )

    def _wait_tcp(self) -> None:
        """Wait until the server accepts connections on its TCP port.

        pg_ctl -w only checks the unix socket; clients use TCP. This is also
        the wait for a server that an interrupted start left still starting.
        """
        result = subprocess.run(
            [
                str(BIN / "pg_isready"),
                "-q",
                "-h",
                HOST,
                "-p",
                str(self.port),
                "-t",
                str(START_TIMEOUT_S),
            ],
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if result.returncode != 0:
            raise DevEnvError(
                f"PostgreSQL did not answer on {HOST}:{self.port} within "
                f"{START_TIMEOUT_S} s; see {self.log}"
            )

    def _ensure_role_and_database(self) -> None:
        # Idempotent, and run on every start, so a start interrupted between
        # initdb and here is completed by the next one.
        if self._psql(f"SELECT 1 FROM pg_roles WHERE rolname = '{ROLE}'") != "1":
            self._psql(f"CREATE ROLE {ROLE} LOGIN CREATEDB PASSWORD '{PASSWORD}'")
        if self._psql(f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'") != "1":
            self._psql(f"CREATE DATABASE {DATABASE} OWNER {ROLE}")

    def _psql(self, sql: str) -> str:
        # Over the unix socket, where `initdb --auth-local=trust` lets the
        # superuser in without a password.
        result = self._run(
            [
                str(BIN / "psql"),
                "-h",
                str(self.run_dir),
                "-p",
                str(self.port),
                "-U",
                SYSTEM_USER,
                "-d",
                "postgres",
                "-v",
                "ON_ERROR_STOP=1",
                "-X",
                "-q",
                "-t",
                "-A",
                "-c",
                sql,
            ]
        )
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines() or [f"exit code {result.returncode}"]
            raise DevEnvError(f"setting up role and database {ROLE!r} failed: {lines[-1]}")
        return result.stdout.strip()

    def _run(self, command: Sequence[str]) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program, as the `postgres` user when we are root."""
        if os.geteuid() == 0:
            command = ["runuser", "-u", SYSTEM_USER, "--", *command]
        return subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            check=False,
            # The postgres user may not be allowed into our current folder.
            cwd=self.base,
        )


def _system_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        pass
    result = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise DevEnvError(
            f"could not create the system user {SYSTEM_USER!r} PostgreSQL must run as: "
            f"{result.stderr.strip() or result.returncode}"
        )
    return pwd.getpwnam(SYSTEM_USER)


def _check_traversable(path: Path) -> None:
    """Fail early, and clearly, if the postgres user cannot reach into `path`.

    `path` is the dev folder: our folders below it belong to the postgres user.
    We do not chmod the dev folder or its parents: they are not ours to open up.
    """
    for folder in [path, *path.parents]:
        if not os.stat(folder).st_mode & 0o001:
            raise DevEnvError(
                f"the postgres user cannot enter {folder} (no search permission for others); "
                "run `chmod o+x` on it or set TOPICFLOW_DEV_DIR elsewhere"
            )


def _is_postgres_process(pid: int) -> bool:
    """True if `pid` is a live (not zombie) postgres server process."""
    proc = Path("/proc") / str(pid)
    try:
        cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        stat = (proc / "stat").read_text()
    except OSError:
        return False
    state = stat.rpartition(")")[2].split()[:1]
    return bool(cmdline) and cmdline[0].endswith(b"postgres") and state != ["Z"]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False
