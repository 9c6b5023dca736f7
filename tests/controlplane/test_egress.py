"""The egress guard: one policy per purpose, IPv4 hidden in IPv6 forms, metadata addresses, DNS safety.

Real local listeners count the connections they accept: a refused target must reach none of them.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from controlplane.egress import EgressDenied, Purpose, check_host, check_ip, embedded_ipv4, guarded_request
from registry.probes import ProbeSpec
from registry.runner import run_probes_sync

OUTBOUND = [Purpose.WEBHOOK, Purpose.DELIVERY, Purpose.NOTIFICATION]
ALL = [Purpose.PROBE, *OUTBOUND]

# Cloud metadata and other never-reachable targets, also as the IPv6 forms that carry them.
ALWAYS_DENIED = [
    "169.254.169.254",
    "::ffff:169.254.169.254",
    "::a9fe:a9fe",  # IPv4-compatible
    "::ffff:0:a9fe:a9fe",  # IPv4-translated (SIIT)
    "64:ff9b::a9fe:a9fe",  # NAT64 well-known prefix
    "64:ff9b:1::a9fe:a9fe",  # NAT64 local-use prefix, /96 layout
    "64:ff9b:1:a9fe:a9:fe00::",  # NAT64 local-use prefix, /48 layout (around the u-octet)
    "2002:a9fe:a9fe::1",  # 6to4
    "2001:0:4136:e378:8000:63bf:5601:5601",  # Teredo: client 169.254.169.254 XOR-obfuscated
    "100.100.100.200",  # Alibaba
    "::ffff:100.100.100.200",
    "2002:6464:64c8::1",
    "192.0.0.192",  # Oracle
    "fd00:ec2::254",  # AWS IPv6
    "fe80::1",
    "0.0.0.0",
    "0.1.2.3",
    "::",
    "224.0.0.1",
    "ff02::1",
    "255.255.255.255",
    "240.0.0.1",
]
# Loopback and private ranges: a probe's job, refused for webhooks/deliveries/notifications in production.
PRIVATE = [
    "127.0.0.1",
    "127.1.2.3",
    "::1",
    "::ffff:127.0.0.1",
    "::7f00:1",
    "::ffff:0:7f00:1",
    "64:ff9b::7f00:1",
    "2002:7f00:1::1",
    "10.0.0.1",
    "::ffff:10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "2002:c0a8:101::",
    "100.64.0.1",
    "fd12:3456::1",
    "fc00::1",
]
PUBLIC = ["93.184.216.34", "2606:4700:4700::1111", "::ffff:93.184.216.34", "2002:5db8:d822::1"]


@pytest.fixture
def production_policy(settings):  # type: ignore[no-untyped-def]
    """The production defaults, whatever mode this test pass runs in."""
    settings.EGRESS_ALLOW_PRIVATE = False
    settings.EGRESS_ALLOW_NETWORKS = []
    return settings


class Listener:
    """A dual-stack TCP listener on the loopback that counts the connections it accepts (answers 204)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("::", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    def wait_accepted(self, count: int, timeout: float = 3.0) -> int:
        deadline = time.monotonic() + timeout
        while self.accepted < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.accepted

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    item = Listener()
    yield item
    item.close()


def test_embedded_ipv4_reads_every_carrying_form() -> None:
    metadata = ipaddress.IPv4Address("169.254.169.254")
    for form in ALWAYS_DENIED[1:9]:
        assert metadata in embedded_ipv4(ipaddress.ip_address(form)), form
    assert embedded_ipv4(ipaddress.ip_address("::1")) == []  # loopback is not "IPv4-compatible 0.0.0.1"
    assert embedded_ipv4(ipaddress.ip_address("2606:4700:4700::1111")) == []


@pytest.mark.parametrize("purpose", ALL)
@pytest.mark.parametrize("address", ALWAYS_DENIED)
def test_metadata_and_reserved_addresses_are_denied_for_every_purpose(settings, purpose, address) -> None:
    settings.EGRESS_ALLOW_PRIVATE = True  # even the most permissive mode
    settings.EGRESS_ALLOW_NETWORKS = ["0.0.0.0/0", "::/0"]  # the allow-list never overrides a denied network
    with pytest.raises(EgressDenied, match="denied network"):
        check_ip(address, purpose=purpose)
    with pytest.raises(EgressDenied):
        check_host(f"[{address}]" if ":" in address else address, purpose=purpose)


@pytest.mark.parametrize("address", PRIVATE)
def test_private_addresses_split_by_purpose_in_production(production_policy, address) -> None:
    check_ip(address, purpose=Purpose.PROBE)  # probes check internal services
    for purpose in OUTBOUND:
        with pytest.raises(EgressDenied, match="private network"):
            check_ip(address, purpose=purpose)


@pytest.mark.parametrize("address", PRIVATE)
def test_embedded_mode_allows_private_targets_for_every_purpose(settings, address) -> None:
    settings.EGRESS_ALLOW_PRIVATE = True
    for purpose in ALL:
        check_ip(address, purpose=purpose)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass_every_policy(production_policy, address) -> None:
    for purpose in ALL:
        check_ip(address, purpose=purpose)


def test_allow_list_admits_exactly_its_networks(production_policy) -> None:
    production_policy.EGRESS_ALLOW_NETWORKS = ["127.0.0.0/8", "10.1.0.0/16"]
    for address in ("127.0.0.1", "::ffff:127.0.0.1", "10.1.2.3", "2002:a01:203::1"):
        check_ip(address, purpose=Purpose.WEBHOOK)
    for address in ("10.2.0.1", "192.168.0.1", "::1", "fd00::1"):
        with pytest.raises(EgressDenied):
            check_ip(address, purpose=Purpose.WEBHOOK)


def test_default_settings_follow_the_mode(settings) -> None:
    assert settings.EGRESS_ALLOW_PRIVATE is (not settings.PRODUCTION)
    assert settings.EGRESS_ALLOW_NETWORKS == []
    for address in ("169.254.169.254", "100.100.100.200", "192.0.0.192", "fd00:ec2::254"):
        with pytest.raises(EgressDenied):
            check_ip(address, purpose=Purpose.PROBE)


@pytest.mark.parametrize(
    "host", ["metadata.google.internal", "METADATA.google.internal.", "metadata", "instance-data.ec2.internal"]
)
def test_metadata_host_names_are_refused_for_every_purpose(host) -> None:
    for purpose in ALL:
        with pytest.raises(EgressDenied, match="denied"):
            check_host(host, purpose=purpose)


@pytest.mark.parametrize("purpose", OUTBOUND)
@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "localhost", "2130706433", "0x7f.1", "127.1"],
)
def test_outbound_request_to_loopback_forms_never_connects_in_production(
    production_policy, listener, purpose, host
) -> None:
    url = f"http://{host}:{listener.port}/hook"
    with pytest.raises(EgressDenied):
        guarded_request("POST", url, purpose=purpose, body=b"{}", timeout=2)
    assert listener.accepted == 0
    # The same request reaches the listener once its network is allow-listed: the refusal above was the guard.
    production_policy.EGRESS_ALLOW_NETWORKS = ["127.0.0.0/8", "::1/128"]
    assert guarded_request("POST", url, purpose=purpose, body=b"{}", timeout=2).status == 204
    assert listener.accepted == 1


@pytest.mark.parametrize("address", ALWAYS_DENIED[:12])
def test_outbound_request_to_metadata_forms_is_refused_before_any_connect(settings, monkeypatch, address) -> None:
    settings.EGRESS_ALLOW_PRIVATE = True
    attempts: list[object] = []
    monkeypatch.setattr(socket.socket, "connect", lambda self, addr: attempts.append(addr))
    host = f"[{address}]" if ":" in address else address
    for purpose in ALL:
        with pytest.raises(EgressDenied):
            guarded_request("GET", f"http://{host}/latest/meta-data/", purpose=purpose, timeout=1)
    assert attempts == []


@pytest.mark.parametrize("kind", ["http", "tcp"])
@pytest.mark.parametrize("address", ["127.0.0.1", "::ffff:127.0.0.1", "::ffff:7f00:1", "localhost"])
def test_probe_to_a_denied_network_never_connects(settings, listener, kind, address) -> None:
    """Loopback stands in for a denied range that routes here: every spelling of it is refused."""
    settings.EGRESS_DENY_NETWORKS = [*settings.EGRESS_DENY_NETWORKS, "127.0.0.0/8", "::1/128"]
    spec = ProbeSpec(check_id=1, kind=kind, address=address, port=listener.port, timeout=2)
    result = run_probes_sync([spec])[0]
    assert result.status == "critical"
    assert "egress guard" in result.output
    time.sleep(0.1)  # a connection, had one been made, would be counted by now
    assert listener.accepted == 0


@pytest.mark.parametrize("kind", ["http", "tcp"])
def test_probe_reaches_loopback_in_production_policy(production_policy, listener, kind) -> None:
    spec = ProbeSpec(check_id=1, kind=kind, address="::ffff:127.0.0.1", port=listener.port, timeout=2)
    spec.expected = ((204, 204),)
    assert run_probes_sync([spec])[0].status == "passing"
    assert listener.wait_accepted(1) == 1


@pytest.mark.parametrize("address", ALWAYS_DENIED[:12])
def test_probe_to_metadata_forms_is_refused_by_the_guard(address) -> None:
    for kind in ("http", "tcp"):
        spec = ProbeSpec(check_id=1, kind=kind, address=address, port=80, timeout=1)
        result = run_probes_sync([spec])[0]
        assert result.status == "critical" and "egress guard" in result.output, (kind, result.output)
        assert result.latency_ms is None  # refused before any connection attempt


def _egress_settings_in_child(tmp_path, **variables: str) -> str:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    child_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("EGRESS_") and k not in {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL"}
    }
    child_env.update({"CONTROLPLANE_VAR_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "controlplane.settings"})
    child_env.update(variables)
    code = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.EGRESS_ALLOW_PRIVATE, ','.join(s.EGRESS_ALLOW_NETWORKS) or '-')"
    )
    done = subprocess.run([sys.executable, "-c", code], env=child_env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip()


def test_private_targets_are_off_by_default_only_in_production(tmp_path) -> None:
    production = {
        "DATABASE_URL": "postgres://nobody@127.0.0.1:1/none",
        "REDIS_URL": "redis://127.0.0.1:1/0",
        "SECRET_KEY": "x" * 60,
        "CONFIG_ENCRYPTION_KEY": "KpRDeMPy7aK4WPSoY60LaIeFfUlKnGQoxEfZIs5Hdjk=",
    }
    assert _egress_settings_in_child(tmp_path) == "True -"
    assert _egress_settings_in_child(tmp_path, **production) == "False -"
    assert _egress_settings_in_child(tmp_path, **production, EGRESS_ALLOW_PRIVATE="true") == "True -"
    allowed = _egress_settings_in_child(tmp_path, **production, EGRESS_ALLOW_NETWORKS="10.20.0.0/16, fd00:1::/64")
    assert allowed == "False 10.20.0.0/16,fd00:1::/64"
