"""core.hosts: ALLOWED_HOSTS parsing and Host matching (names with any port, name:port, IPv6, `*`)."""

from __future__ import annotations

import pytest

from core import hosts
from core.settings import CommonSettings

LOOPBACK = hosts.parse("127.0.0.1, localhost ,[::1],example.test:8443")


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "127.0.0.1:8080", "LOCALHOST:1", "localhost", "[::1]", "[::1]:16080", "example.test:8443"],
)
def test_loopback_names_with_any_port_are_allowed(host: str) -> None:
    assert hosts.allowed(host, LOOPBACK)


@pytest.mark.parametrize(
    "host",
    [None, "", "evil.example", "evil.example:8080", "127.0.0.1.evil.example", "localhost.evil.example:80",
     "example.test", "example.test:443", "[::2]", "127.0.0.2:8080", "[::1]x", "localhost:http", "[::1]:", "::1"],
)  # fmt: skip
def test_other_hosts_are_refused(host: str | None) -> None:
    assert not hosts.allowed(host, LOOPBACK)
    with pytest.raises(hosts.HostNotAllowed) as info:
        hosts.check(host, LOOPBACK)
    assert info.value.as_dict()["error"]["code"] == "host_not_allowed"
    assert info.value.status == 400


def test_star_allows_any_host_and_a_missing_one() -> None:
    assert hosts.allowed("evil.example", hosts.parse("*"))
    assert hosts.allowed(None, hosts.parse("*"))


@pytest.mark.parametrize("text", ["", " , ", "evil example", "http://localhost", "localhost:port", "a/b"])
def test_malformed_settings_are_refused_at_start(text: str) -> None:
    with pytest.raises(ValueError, match=r"host"):
        CommonSettings(allowed_hosts=text)


def test_the_default_answers_any_host() -> None:
    assert CommonSettings().host_entries == frozenset({"*"})
