"""A TLS cluster: certificates from ``cluster certs``, a real scheduler and two agents speaking mutual
TLS on 127.0.0.1, the job files served over TLS, and whoever lacks a certificate of the CA refused."""

from __future__ import annotations

import json
import ssl
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration


def _target(cluster: Any) -> str:
    assert cluster.address.startswith("tls://")
    return cluster.address


def test_certs_are_made_with_private_keys_and_never_overwritten(cli, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    made = cli("cluster", "certs", "--out", certs)
    assert made.code == 0, made.err
    assert "BUILDYARD_CLUSTER_CERTS" in made.out
    names = {p.name for p in certs.iterdir()}
    assert names == {f"{r}.{e}" for r in ("ca", "scheduler", "agent", "client") for e in ("pem", "key")}
    for key in certs.glob("*.key"):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    from cryptography import x509

    ca = x509.load_pem_x509_certificate((certs / "ca.pem").read_bytes())
    client = x509.load_pem_x509_certificate((certs / "client.pem").read_bytes())
    assert client.issuer == ca.subject
    client.verify_directly_issued_by(ca)
    again = cli("cluster", "certs", "--out", certs)
    assert again.code != 0 and "exists" in again.err and "Traceback" not in again.err
    assert again.err.strip().count("\n") == 0


def test_a_pipeline_runs_over_tls_on_two_agents(cli, make_project, tls_cluster, certs, monkeypatch) -> None:
    monkeypatch.setenv("BUILDYARD_CLUSTER_CERTS", str(certs))
    root = make_project(
        {
            "src/in.txt": "over tls\n",
            "buildyard.yml": """\
jobs:
  build:
    steps:
      - run: mkdir -p out && cat src/in.txt > out/a.txt && echo "agent=$BUILDYARD_AGENT"
    artifacts: {paths: [out/]}
  use:
    needs: [build]
    matrix: {n: ["1", "2", "3", "4"]}
    steps:
      - run: echo "seen=$(cat out/a.txt) agent=$BUILDYARD_AGENT"; sleep 0.3
""",
        }
    )
    (root / ".gitignore").write_text(".buildyard/\nout/\n")
    result = cli("-C", root, "run", "--json", "-j", "4", "--executor", _target(tls_cluster))
    assert result.code == 0, result.out + result.err
    jobs = {j["id"]: j for j in json.loads(result.out)["jobs"]}
    assert {j["status"] for j in jobs.values()} == {"success"}, jobs
    assert (root / "out" / "a.txt").read_text() == "over tls\n"  # uploaded back over the TLS CAS
    agents = set()
    for job_id, job in jobs.items():
        log = Path(job["log"]).read_text()
        agents.add(log.split("agent=")[1].split()[0])
        if job_id.startswith("use"):
            assert "seen=over tls" in log
    assert all(a.startswith("tls://127.0.0.1:") for a in agents), agents
    assert len(agents) == 2, "both agents should have run jobs"


def test_cluster_status_over_tls_needs_the_client_certificate(cli, tls_cluster, certs) -> None:
    shown = cli("cluster", "status", "--scheduler", tls_cluster.address, "--certs", certs, "--json")
    assert shown.code == 0, shown.err
    assert {a["name"] for a in json.loads(shown.out)} == {"a1", "a2"}
    assert all(a["address"].startswith("tls://") for a in json.loads(shown.out))


def test_an_orchestrator_without_a_valid_client_certificate_is_refused(
    cli, make_project, tls_cluster, tmp_path, monkeypatch
) -> None:
    root = make_project({"buildyard.yml": "jobs:\n  a: {script: echo never-ran}\n"})
    # no certificates at all: told what to set, in one line
    result = cli("-C", root, "run", "--json", "--executor", _target(tls_cluster))
    assert result.code == 1
    job = json.loads(result.out)["jobs"][0]
    assert job["status"] == "failed" and "BUILDYARD_CLUSTER_CERTS" in job["message"]
    # a certificate of another CA: the scheduler refuses the connection
    other = tmp_path / "other"
    assert cli("cluster", "certs", "--out", other).code == 0
    monkeypatch.setenv("BUILDYARD_CLUSTER_CERTS", str(other))
    result = cli("-C", root, "run", "--json", "--executor", _target(tls_cluster))
    assert result.code == 1
    job = json.loads(result.out)["jobs"][0]
    assert job["status"] == "failed" and "cannot reach the Dask scheduler" in job["message"], job
    # plain TCP to the TLS scheduler: refused too
    from distributed import Client

    plain = "tcp://" + tls_cluster.address.removeprefix("tls://")
    with pytest.raises((OSError, TimeoutError)):
        Client(plain, set_as_default=False, timeout="3s")


def test_the_job_files_are_served_over_mutual_tls(tmp_path, certs) -> None:
    from buildyard.cache.store import CacheStore
    from buildyard.dask.certs import load_tls
    from buildyard.dask.executor import _CasServer

    store = CacheStore(tmp_path / "cas", private=True)
    store.ensure_root()
    digest = store.cas.put_bytes(b"blob over tls")
    server = _CasServer(store, "127.0.0.1", load_tls(certs, "client"))
    try:
        assert server.url.startswith("https://127.0.0.1:")
        path = f"{server.url}/_buildyard/v1/blobs/{digest}"
        headers = {"authorization": f"Bearer {server.token}"}
        # plain HTTP, or TLS without a client certificate: no answer
        with pytest.raises(httpx.HTTPError):
            httpx.get(path.replace("https://", "http://"), headers=headers, timeout=5)
        bare = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        bare.check_hostname = False
        with pytest.raises(httpx.HTTPError):
            httpx.get(path, headers=headers, verify=bare, timeout=5)
        # an agent's certificate of the cluster's CA: served
        agent = load_tls(certs, "agent").security("worker").get_connection_args("worker")["ssl_context"]
        answer = httpx.get(path, headers=headers, verify=agent, timeout=5)
        assert answer.status_code == 200
    finally:
        server.close()


@pytest.mark.parametrize(
    "args",
    [
        ("run", "--executor", "dask://192.0.2.10:8786"),
        ("agent", "--scheduler", "tcp://192.0.2.10:8786"),
        ("agent", "--scheduler", "tcp://127.0.0.1:8786", "--host", "0.0.0.0"),
        ("cluster", "start", "--host", "0.0.0.0"),
        ("cluster", "status", "--scheduler", "tcp://192.0.2.10:8786"),
    ],
)
def test_plain_tcp_off_loopback_is_refused_with_one_line(cli, make_project, args) -> None:
    root = make_project({"buildyard.yml": "jobs:\n  a: {script: echo hi}\n"})
    result = cli("-C", root, *args)
    text = result.out + result.err
    assert result.code != 0
    assert "plain TCP is allowed on loopback only" in text, text
    assert "Traceback" not in text
