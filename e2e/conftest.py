"""Shared fixtures for the e2e tests: a real control plane (see cluster.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import Cluster, build_binaries  # noqa: E402


@pytest.fixture(scope="session")
def kube_binaries() -> Path:
    """Directory with kube-apiserver, kube-controller-manager and etcd (built once, cached)."""
    return build_binaries()


@pytest.fixture(scope="session")
def kube(tmp_path_factory, kube_binaries):
    """etcd + kube-apiserver on loopback for the whole session.

    Yields a Cluster: .kubeconfig, .server, .kubectl(*args), .binaries,
    .restart_apiserver(). Logs and certificates stay in its .workdir."""
    cluster = Cluster(tmp_path_factory.mktemp("kube"), kube_binaries)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
