"""Fixtures for the PAM suite: real PostgreSQL, vaultdev, real local users, vleased, pam_vlease.so.

Needs root (local users; the broker accepts OpenSession and Login from root only). Nothing is
installed into the host's /etc/pam.d: libpamtest runs under pam_wrapper with its own service
directory, and pam-driver uses pam_start_confdir() with a service directory in a temp dir, both
pointing at the built module by absolute path.
"""
import os

import pytest

from broker import VLEASE, VLEASED, Brokers, approle_config
from localusers import LocalUsers

from pamhelpers import PAM_DRIVER, PAM_MODULE, PAMTEST_RUN, remove_scratch_dirs

USERS = {"vlpalice": (), "vlpbob": (), "vlpcarol": ("vlpdb",)}


@pytest.fixture(scope="session", autouse=True)
def _need_root_and_binaries():
    if os.geteuid() != 0:
        pytest.skip("the PAM suite needs root (local users, root-only broker calls)")
    for b in (VLEASED, VLEASE, PAM_MODULE, PAM_DRIVER, PAMTEST_RUN):
        if not os.access(b, os.R_OK):
            pytest.fail(f"{b} is not built; run tools/check or set VLEASE_BUILD_DIR")
    yield
    remove_scratch_dirs()       # PAM service files, pam-driver and pamtest logs: nothing left in /tmp


@pytest.fixture(scope="session")
def users():
    lu = LocalUsers()
    lu.group("vlpdb")
    for name, groups in USERS.items():
        lu.user(name, groups)
    yield lu
    lu.cleanup()


DB_READER = """
[credential db-reader]
path = database/creds/reader
allow_users = vlpalice vlpbob
allow_groups = vlpdb
provision = yes
"""


@pytest.fixture
def make_broker(vaultdev, approle, users, pg):
    """make_broker(credentials=DB_READER, broker_section="", vault_extra="") -> started Broker, stopped at
    the end of the test with SIGTERM (exit 0 and no sanitizer report asserted)."""
    brokers = Brokers()

    def make(credentials=DB_READER, broker_section="", vault_extra="", start=True):
        return brokers.make(approle_config(vaultdev.addr, credentials, broker_section, vault_extra), *approle, start)

    yield make
    errors = brokers.stop_all()
    vaultdev.reset_faults()
    if errors:
        pytest.fail("\n".join(errors))
