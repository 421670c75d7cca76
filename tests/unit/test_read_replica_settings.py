"""MIDAS_READ_DATABASE_URLS: comma-separated, secret; replicas named without credentials."""

from __future__ import annotations

import pytest

from midas.config import Settings
from midas.eventstore.replicas import _name


def test_read_database_urls_are_comma_separated_secrets(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    monkeypatch.setenv("MIDAS_READ_DATABASE_URLS",
                       " postgresql://u:pw1@r1:5432/midas, ,postgresql://u:pw2@r2/midas ")
    urls = Settings().read_database_urls
    assert [u.get_secret_value() for u in urls] == ["postgresql://u:pw1@r1:5432/midas",
                                                    "postgresql://u:pw2@r2/midas"]
    assert "pw1" not in repr(Settings())
    monkeypatch.delenv("MIDAS_READ_DATABASE_URLS")
    assert Settings().read_database_urls == []


def test_a_replica_is_named_by_host_and_port_only() -> None:
    assert _name("postgresql://user:secret@10.0.0.5:5433/midas?sslmode=require") == (
        "10.0.0.5:5433")
    assert _name("postgresql://replica.internal/midas") == "replica.internal"
