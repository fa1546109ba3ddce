"""A local mailbox for the demo: a real SMTP server (aiosmtpd) that keeps every message as a file.

`make run` points Django's SMTP backend at it, and staff read what customers would have received at
/staff/mailbox/ (core.views.dev_mailbox). Messages are stored as `<time>-<n>.eml` in the folder.

    python -m standins.mailbox --port 1025 --dir .local/mailbox
"""

from __future__ import annotations

import argparse
import itertools
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class SaveToFolder:
    """aiosmtpd handler: write each accepted message, exactly as received, to the folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.counter = itertools.count(1)
        folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope) -> str:
        name = f"{time.time():.6f}-{next(self.counter)}.eml"
        (self.folder / name).write_bytes(envelope.original_content or envelope.content)
        return "250 Message accepted for delivery"


def serve(port: int, folder: Path) -> None:
    from aiosmtpd.controller import Controller

    controller = Controller(SaveToFolder(folder), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()


@dataclass
class Mailbox:
    """The mailbox in a child process, on a free loopback port."""

    port: int
    folder: Path
    process: subprocess.Popen

    @classmethod
    def start(cls, folder: Path, *, timeout: float = 15.0) -> Mailbox:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        process = subprocess.Popen(
            [sys.executable, "-m", "standins.mailbox", "--port", str(port), "--dir", str(folder)],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return cls(port, folder, process)
            except OSError:
                if process.poll() is not None:
                    break
                time.sleep(0.05)
        process.kill()
        raise RuntimeError("The local mailbox did not start.")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", type=Path, default=ROOT / ".local" / "mailbox")
    args = parser.parse_args(argv)
    serve(args.port, args.dir)


if __name__ == "__main__":
    main()
