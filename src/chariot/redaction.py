"""Keep secrets out of every message: known passwords and any ``user:password@`` part.

``redact`` is applied by the CLI to every error line and hint and by the log formatter to
every record, so a library message that quotes a URL (parsable or not) cannot leak it.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

MASK = "***"

# "user:secret@" inside URLs and DSNs, also malformed ones ("u:p@@host::1", "mysql://u:p@h").
_CREDENTIALS = re.compile(r"(?P<user>[^\s:/@'\"]*):(?P<password>[^\s/'\"]+)@")

_known_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret (a password from the settings) so that ``redact`` masks it anywhere."""
    if value and len(value) >= 3:  # masking "a" everywhere would garble every message
        _known_secrets.add(value)


def register_url_secrets(url: str | None) -> None:
    """Register the password of a URL or DSN, parsable or not (``u:p@@host::1`` included).

    Without a parser to trust, every plausible reading of the part before an ``@`` counts.
    """
    if not url:
        return
    rest = url.split("://", 1)[-1]
    if "@" not in rest:
        return
    for userinfo in {rest.split("@", 1)[0], rest.rsplit("@", 1)[0]}:
        if ":" not in userinfo:
            continue
        password = userinfo.split(":", 1)[1]
        for candidate in {password, password.rstrip("@/"), password.split("@", 1)[0]}:
            register_secret(candidate)
            register_secret(unquote(candidate))


def redact(text: str) -> str:
    for secret in sorted(_known_secrets, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return _CREDENTIALS.sub(lambda m: f"{m['user']}:{MASK}@", text)
