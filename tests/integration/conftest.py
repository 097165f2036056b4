"""Fixtures for the broker's integration suite: real PostgreSQL, vaultdev, local users, vleased.

Needs root (local users, setpriv); the `pg` and `vaultdev` fixtures come from tests/conftest.py.
"""
import os

import pytest

from broker import VLEASE, VLEASED, Brokers, approle_config
from localusers import LocalUsers

USERS = {"vlalice": (), "vlbob": (), "vlcarol": (), "vldave": ("vldbusers",)}


@pytest.fixture(scope="session", autouse=True)
def _need_root_and_binaries():
    if os.geteuid() != 0:
        pytest.skip("the integration suite needs root (local users, PostgreSQL)")
    for b in (VLEASED, VLEASE):
        if not os.access(b, os.X_OK):
            pytest.fail(f"{b} is not built; run tools/check or set VLEASE_BUILD_DIR")


@pytest.fixture(scope="session")
def users():
    lu = LocalUsers()
    lu.group("vldbusers")
    for name, groups in USERS.items():
        lu.user(name, groups)
    yield lu
    lu.cleanup()


DB_READER = """
[credential db-reader]
path = database/creds/reader
allow_users = vlalice vlbob
allow_groups = vldbusers
"""


@pytest.fixture
def make_broker(vaultdev, approle, users, pg):
    """make_broker(broker_section="", credentials=DB_READER, vault_extra="", vault=vaultdev) -> started Broker.

    Each broker is stopped at the end of the test with SIGTERM; exit 0 and no sanitizer report are
    asserted there (Broker.stop)."""
    brokers = Brokers()

    def make(broker_section="", credentials=DB_READER, vault_extra="", vault=None, start=True, role=None):
        role_id, secret_id = role or approle
        cfg = approle_config((vault or vaultdev).addr, credentials, broker_section, vault_extra)
        return brokers.make(cfg, role_id, secret_id, start)

    yield make
    errors = brokers.stop_all()
    vaultdev.reset_faults()
    if errors:
        pytest.fail("\n".join(errors))
