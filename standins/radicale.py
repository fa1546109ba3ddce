"""A real Radicale CalDAV server on 127.0.0.1, for the `make run` demo, tests and benches.

Without `users` anyone may sign in with any password (`[auth] type = none`); with them, only those
user names and passwords are accepted (htpasswd, plain text), so a wrong one gets a 401.
"""

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

from standins._base import child_stop


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Radicale:
    url: str
    folder: Path
    process: subprocess.Popen

    @classmethod
    def start(cls, folder: Path, *, users: dict[str, str] | None = None, port: int | None = None) -> Radicale:
        """Start a server keeping its calendars in `folder`; it answers when this returns."""
        folder.mkdir(parents=True, exist_ok=True)
        port = port or _free_port()
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
        server = cls(url=f"http://127.0.0.1:{port}/", folder=folder, process=process)
        deadline = time.monotonic() + 15
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"Radicale exited with {process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return server
            except OSError:
                if time.monotonic() > deadline:
                    server.stop()
                    raise RuntimeError("Radicale did not start within 15 s") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (idempotent); its data stays in `folder`."""
        child_stop(self.process)


@contextlib.contextmanager
def radicale(*, users: dict[str, str] | None = None) -> Iterator[Radicale]:
    """Run Radicale in a temporary folder until the block ends."""
    with tempfile.TemporaryDirectory(prefix="radicale-") as tmp:
        server = Radicale.start(Path(tmp), users=users)
        try:
            yield server
        finally:
            server.stop()
