"""A private PostgreSQL primary and its streaming replica, for tests and benchmarks.

``initdb`` makes a primary cluster (``wal_level = replica``) under a temporary folder, on a
free port; ``pg_basebackup -R`` copies it into a standby that streams from it, on another
port; ``pg_ctl`` starts and stops both. Nothing touches the machine's own server. Run as
root (CI), the clusters run as the ``postgres`` system user (PostgreSQL refuses root),
which then owns the folder. ``stop()`` stops both servers and removes the folder.

The binaries are found in ``MIDAS_PG_BINDIR``, else the newest
``/usr/lib/postgresql/*/bin``, else ``pg_config --bindir``.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SERVER_SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{sockets}'
wal_level = replica
max_wal_senders = 5
hot_standby = on
hot_standby_feedback = on
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 64MB
max_connections = 60
"""


class ClusterError(RuntimeError):
    pass


def bindir() -> Path:
    configured = os.environ.get("MIDAS_PG_BINDIR")
    if configured:
        return Path(configured)
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                       key=lambda p: int(p.parent.parent.name) if p.parent.parent.name
                       .isdigit() else 0)
    if installed:
        return installed[-1].parent
    found = shutil.which("pg_config")
    if found:
        return Path(subprocess.run([found, "--bindir"], capture_output=True, text=True,
                                   check=True).stdout.strip())
    raise ClusterError("no PostgreSQL binaries: set MIDAS_PG_BINDIR")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class StreamingPair:
    root: Path
    primary_port: int
    standby_port: int
    user: str | None  # the system user the servers run as (None: this one)
    bin: Path = field(default_factory=bindir)

    @property
    def primary_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.primary_port}/postgres"

    @property
    def standby_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.standby_port}/postgres"

    @property
    def primary_dir(self) -> Path:
        return self.root / "primary"

    @property
    def standby_dir(self) -> Path:
        return self.root / "standby"

    def run(self, *args: str, timeout: float = 120) -> str:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                              cwd=self.root, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise ClusterError(f"{args[0]} failed ({done.returncode}): "
                               f"{done.stderr.strip()[-2000:]}")
        return done.stdout

    def start_standby(self) -> None:
        self.run("pg_ctl", "-D", str(self.standby_dir), "-l", str(self.root / "standby.log"),
                 "-w", "-t", "120", "start")

    def stop_standby(self) -> None:
        self.run("pg_ctl", "-D", str(self.standby_dir), "-m", "fast", "-w", "stop")

    def stop(self) -> None:
        """Stop both servers (whatever state they are in) and remove everything."""
        for directory in (self.standby_dir, self.primary_dir):
            if (directory / "postmaster.pid").exists():
                with contextlib.suppress(ClusterError, subprocess.TimeoutExpired):
                    self.run("pg_ctl", "-D", str(directory), "-m", "immediate", "-w", "stop",
                             timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


def start_pair() -> StreamingPair:
    """A running primary and a standby streaming from it (``stop()`` when done)."""
    user = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="midas-replica-"))
    if user is not None:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    pair = StreamingPair(root, free_port(), free_port(), user)
    try:
        _start(pair)
    except BaseException:
        pair.stop()
        raise
    return pair


def _start(pair: StreamingPair) -> None:
    pair.run("initdb", "-D", str(pair.primary_dir), "-U", "postgres", "--auth=trust",
             "-E", "UTF8", "--no-sync", "--no-instructions")
    _configure(pair, pair.primary_dir, pair.primary_port)
    pair.run("pg_ctl", "-D", str(pair.primary_dir), "-l", str(pair.root / "primary.log"),
             "-w", "-t", "120", "start")
    pair.run("pg_basebackup", "-h", "127.0.0.1", "-p", str(pair.primary_port), "-U",
             "postgres", "-D", str(pair.standby_dir), "-R", "-X", "stream", "--no-sync",
             "-c", "fast")
    _configure(pair, pair.standby_dir, pair.standby_port)
    pair.start_standby()
    _wait_streaming(pair)


def _configure(pair: StreamingPair, directory: Path, port: int) -> None:
    """Append this cluster's settings (the last occurrence of a setting wins)."""
    settings = SERVER_SETTINGS.format(port=port, sockets=pair.root)
    conf = directory / "postgresql.conf"
    if pair.user is None:
        with conf.open("a") as handle:
            handle.write(settings)
        return
    subprocess.run(["runuser", "-u", pair.user, "--", "tee", "-a", str(conf)],
                   input=settings, text=True, capture_output=True, check=True)


def _wait_streaming(pair: StreamingPair, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        out = pair.run("psql", "-h", "127.0.0.1", "-p", str(pair.primary_port), "-U",
                       "postgres", "-Atc", "SELECT count(*) FROM pg_stat_replication"
                       " WHERE state = 'streaming'")
        if out.strip() == "1":
            return
        time.sleep(0.2)
    raise ClusterError("the standby did not start streaming")
