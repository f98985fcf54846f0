"""Events sealed for their trip through the broker to the other web processes.

A notice says which recipients have new events (``"r"``: ``[[recipient, seq], ...]``). Alone,
it makes every other process read those events back from the database before its sockets
get them: a query, and a wait, for each delivery that crosses processes (docs/performance.md,
eighteenth round). So the process that committed the events also puts them in the notice,
sealed: AES-256-GCM under a key derived from ``SECRET_KEY``, which every web process has and
Redis never sees. Redis carries ciphertext it cannot read or alter unnoticed; see
docs/realtime.md, "Why notices".

What is inside is authenticated, and it alone decides who gets what: the recipients and
seqs travel inside the seal as well as outside. The outside list is only ever used to read
from the database, where a socket reads nothing but its own recipient's events, so someone
who can write to Redis can at most make a process read. A seal older than ``MAX_AGE``
is not opened (a replay of an old notice, or a process whose clock is wrong): the notice
then counts as one with no seal, and the database has the events.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from realtime.events import Event

# Seconds a seal stays good: notices are read within milliseconds of being sent.
MAX_AGE = 30.0
# Bound to every seal, so that a ciphertext made under the same key for another purpose
# could never pass for a notice.
_PURPOSE = b"cabinet.realtime.notice.v1"


class Sealer:
    """Seals and opens the events of ``ev`` notices with one key shared by the processes."""

    def __init__(self, secret_key: str) -> None:
        if not secret_key:
            raise ValueError("sealing notices needs a secret key")
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_PURPOSE).derive(
            secret_key.encode()
        )
        self._aead = AESGCM(key)

    def seal(self, events: Sequence[Event], now: float | None = None) -> str:
        """``events`` as one sealed text. The payload of a message sent to six people is
        sealed once, not six times."""
        bodies: dict[tuple[str, str], int] = {}
        routes = [
            [e.recipient, e.seq, bodies.setdefault((e.type, e.data), len(bodies))] for e in events
        ]
        plain = json.dumps(
            {"t": time.time() if now is None else now, "r": routes, "b": list(bodies)},
            separators=(",", ":"),
        ).encode()
        nonce = os.urandom(12)
        return base64.b64encode(nonce + self._aead.encrypt(nonce, plain, _PURPOSE)).decode()

    def open(self, sealed: Any, now: float | None = None) -> list[Event] | None:
        """The events sealed in ``sealed``; None when it is not a seal of ours, was
        altered, or is too old (the caller then reads the database)."""
        if not isinstance(sealed, str):
            return None
        try:
            raw = base64.b64decode(sealed, validate=True)
            plain = json.loads(self._aead.decrypt(raw[:12], raw[12:], _PURPOSE))
        except (InvalidTag, ValueError, binascii.Error):
            return None
        current = time.time() if now is None else now
        if abs(current - float(plain["t"])) > MAX_AGE:
            return None
        bodies = plain["b"]
        # The payload as a dict is not carried: a socket sends ``data``, the text.
        return [
            Event(str(recipient), int(seq), str(bodies[i][0]), {}, str(bodies[i][1]))
            for recipient, seq, i in plain["r"]
        ]
