"""Fixtures for the broker's integration suite: real PostgreSQL, vaultdev, local users, vleased.

Needs root (local users, setpriv); the `pg` and `vaultdev` fixtures come from tests/conftest.py.
"""
import os

import pytest

from broker import VLEASE, VLEASED, Broker
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


def vault_section(vault_addr, extra=""):
    return f"""[vault]
address = {vault_addr}
auth = approle
role_id_file = {{dir}}/role_id
secret_id_file = {{dir}}/secret_id
{extra}
"""


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
    made = []

    def make(broker_section="", credentials=DB_READER, vault_extra="", vault=None, start=True, role=None):
        v = vault or vaultdev
        role_id, secret_id = role or approle
        cfg = vault_section(v.addr, vault_extra) + "\n[broker]\n" + broker_section + "\n" + credentials
        b = Broker(cfg, role_id=role_id, secret_id=secret_id)
        made.append(b)
        return b.start() if start else b

    yield make
    errors = []
    for b in made:
        if b.proc is not None:
            try:
                b.stop()
            except AssertionError as e:
                errors.append(str(e))
    vaultdev.reset_faults()
    if errors:
        pytest.fail("\n".join(errors))
