"""Reading the local demo mailbox (standins/mailbox.py writes one .eml file per message)."""

from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path


@dataclass
class MailboxMessage:
    name: str
    subject: str
    to: str
    sender: str
    date: str
    text: str = ""
    html: str = ""
    attachments: list[tuple[str, str, int]] = field(default_factory=list)  # name, type, size


def _parse(path: Path, *, full: bool) -> MailboxMessage:
    message: EmailMessage = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    found = MailboxMessage(
        name=path.name,
        subject=message["subject"] or "(no subject)",
        to=message["to"] or "",
        sender=message["from"] or "",
        date=message["date"] or "",
    )
    if full:
        text = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        found.text = text.get_content() if text else ""
        found.html = html.get_content() if html else ""
        for part in message.iter_attachments():
            payload = part.get_payload(decode=True) or b""
            found.attachments.append(
                (part.get_filename() or "attachment", part.get_content_type(), len(payload))
            )
    return found


def mailbox_list(*, folder: Path, limit: int = 200) -> list[MailboxMessage]:
    """The newest messages first."""
    if not folder.is_dir():
        return []
    paths = sorted(folder.glob("*.eml"), key=lambda p: p.stat().st_mtime, reverse=True)[:limit]
    return [_parse(p, full=False) for p in paths]


def mailbox_get(*, folder: Path, name: str) -> MailboxMessage:
    """:raises FileNotFoundError: for a name that is not a message in the folder."""
    path = (folder / name).resolve()
    if path.parent != folder.resolve() or path.suffix != ".eml" or not path.is_file():
        raise FileNotFoundError(name)
    return _parse(path, full=True)
