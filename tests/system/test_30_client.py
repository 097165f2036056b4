"""The `vlease` client against the socket-activated, hardened broker under a real systemd."""
import json


def test_vlease_get_activates_broker(container, pg):
    container.systemctl("stop", "vleased.service")
    assert container.unit_property("vleased.service", "ActiveState") == "inactive"
    r = container.run(["vlease", "get", "db-reader", "--json"], user="vltalice")
    assert r.returncode == 0, (r.returncode, r.stderr, container.journal("vleased.service"))
    cred = json.loads(r.stdout)
    ok, err = pg.login(cred["data"]["username"], cred["data"]["password"])
    assert ok, err
    assert container.unit_property("vleased.service", "ActiveState") == "active"
    # The same lease again, from the broker's cache; one field raw.
    r = container.run(["vlease", "get", "db-reader", "--field", "username"], user="vltalice")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == cred["data"]["username"]


def test_vlease_denied_exit_code(container):
    r = container.run(["vlease", "get", "db-reader"], user="vltbob")
    assert r.returncode == 4, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""


def test_vlease_stop_clean(container):
    container.systemctl("stop", "vleased.service")
    assert container.unit_property("vleased.service", "Result") == "success"
    assert container.unit_property("vleased.service", "ExecMainStatus") == "0"
