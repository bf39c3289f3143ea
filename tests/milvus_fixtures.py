"""A real Milvus standalone server (the `milvus` package: the Milvus 2.3.5 binary, with embedded etcd, RocksMQ and
local storage), reached by pymilvus exactly like a Milvus cluster: one per test session, on free ports, its
data in a temporary directory, stopped at the end. It needs no network: everything it runs ships in the wheel.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.service_fixtures import free_port

ETCD = """name: facelens-test
data-dir: {data}
listen-client-urls: http://127.0.0.1:{client}
advertise-client-urls: http://127.0.0.1:{client}
listen-peer-urls: http://127.0.0.1:{peer}
initial-advertise-peer-urls: http://127.0.0.1:{peer}
initial-cluster: facelens-test=http://127.0.0.1:{peer}
"""


class MilvusStandalone:
    """`milvus.MilvusServer` on free local ports with its data (and the binary it unpacks, ~300 MB) in
    `data_dir`; `url` is the `FACELENS_VECTOR_URL` that reaches it. Its embedded etcd gets a config file of its
    own: by default etcd listens on 2379/2380, and a second server on the machine would fail to start.
    `settings` are Milvus configuration keys (dotted, as in milvus.yaml) to change from the package's defaults."""

    def __init__(self, data_dir: Path, timeout: float = 120.0, settings: dict[str, Any] | None = None) -> None:
        from milvus import MilvusServer, MilvusServerConfig

        data_dir.mkdir(parents=True, exist_ok=True)
        default = MilvusServerConfig()
        ports = {key: free_port() for key in default.configurable_items if key.endswith("_port")}
        etcd = data_dir / "etcd.yaml"
        etcd.write_text(ETCD.format(data=data_dir / "data" / "etcd.data", client=ports["etcd_port"],
                                    peer=free_port()))
        template = data_dir / "milvus.yaml.template"
        template.write_text(default.template_text.replace(
            "\netcd:\n", f"\netcd:\n  config:\n    path: {etcd}\n", 1))
        config = MilvusServerConfig(data_dir=str(data_dir), template=str(template))
        config.glog_conf_file = default.glog_conf_file  # the package sets it only with its own template
        for key, value in (settings or {}).items():
            config.set(key, value)
        self.server: Any = MilvusServer(config, wait_for_started=False, **ports)
        self.data_dir = data_dir
        self.timeout = timeout

    @property
    def port(self) -> int:
        return int(self.server.listen_port)

    @property
    def url(self) -> str:
        return f"milvus://127.0.0.1:{self.port}"

    def log_tail(self, chars: int = 2000) -> str:
        logs = self.data_dir / "logs"
        return "".join(path.read_text(errors="replace")[-chars:]
                       for path in sorted(logs.glob("milvus-std*.log")) if path.exists())

    def __enter__(self) -> MilvusStandalone:
        self.server.start()
        try:
            self.server.wait_started(timeout=int(self.timeout * 1000))  # its /healthz answers OK
            socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
        except (TimeoutError, RuntimeError, OSError) as error:
            tail = self.log_tail()
            self.server.stop()
            raise RuntimeError(f"Milvus standalone did not start: {error}\n{tail}") from error
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


@pytest.fixture(scope="session")
def milvus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`milvus://127.0.0.1:<port>` of the session's Milvus standalone server."""
    with MilvusStandalone(tmp_path_factory.mktemp("milvus")) as server:
        yield server.url
