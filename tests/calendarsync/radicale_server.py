"""A real Radicale CalDAV server on 127.0.0.1 for tests: its own folder, a free port, gone afterwards."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Radicale:
    url: str
    folder: Path
    process: subprocess.Popen

    def stop(self) -> None:
        """Stop the server (idempotent); its data stays in `folder` until the context ends."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@contextlib.contextmanager
def radicale(*, users: dict[str, str] | None = None) -> Iterator[Radicale]:
    """Run Radicale until the block ends.

    Without `users` anyone may sign in with any password (`[auth] type = none`); with them, only those
    user names and passwords are accepted (htpasswd, plain text), so a wrong one gets a 401.
    """
    with tempfile.TemporaryDirectory(prefix="radicale-") as tmp:
        folder = Path(tmp)
        port = _free_port()
        auth = "[auth]\ntype = none\n"
        if users:
            (folder / "users").write_text("".join(f"{name}:{password}\n" for name, password in users.items()))
            auth = (
                f"[auth]\ntype = htpasswd\nhtpasswd_filename = {folder / 'users'}\n"
                "htpasswd_encryption = plain\ndelay = 0\n"  # no pause after a wrong password
            )
        (folder / "config").write_text(
            f"[server]\nhosts = 127.0.0.1:{port}\n{auth}"
            f"[storage]\nfilesystem_folder = {folder / 'collections'}\n"
            "[logging]\nlevel = warning\n"
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "radicale", "--config", str(folder / "config")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = Radicale(url=f"http://127.0.0.1:{port}/", folder=folder, process=process)
        try:
            deadline = time.monotonic() + 15
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"Radicale exited with {process.returncode}")
                try:
                    requests.get(server.url, timeout=1)
                    break
                except requests.ConnectionError:
                    if time.monotonic() > deadline:
                        raise RuntimeError("Radicale did not start within 15 s") from None
                    time.sleep(0.05)
            yield server
        finally:
            server.stop()
