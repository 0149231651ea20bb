"""Who is signed in to the console.

The identity (a pasted token, or development headers) travels sealed in the session
cookie: encrypted and authenticated with a key derived from the console's secret, so the
browser can neither read the token in it nor change it. A session ends after its lifetime
or when its token expires, whichever comes first; signing out ends it in this console
process at once, even for a copy of the cookie kept elsewhere."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import secrets
import threading
import time
from collections.abc import Callable, MutableMapping
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from server.console.api import Identity

LIFETIME_S = 12 * 3600
# A sealed identity past this would push the cookie past what browsers keep (4 KB).
SEAL_MAX = 3_600


class SessionTooLarge(Exception):
    """The identity does not fit in a cookie."""


class Sessions:
    """Sealing and unsealing identities in the session; a record of sessions signed out."""

    def __init__(
        self, secret: str, *, lifetime_s: float = LIFETIME_S, clock: Callable[[], float] = time.time
    ) -> None:
        key = hashlib.sha256(b"jobtask console session\0" + secret.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(key))
        self._lifetime_s = lifetime_s
        self._clock = clock
        self._ended: dict[str, float] = {}  # session id -> when it would have ended
        self._lock = threading.Lock()

    def begin(self, session: MutableMapping[str, Any], identity: Identity) -> None:
        """Sign ``identity`` in: a new session id, ending at the lifetime or the token's expiry."""
        now = self._clock()
        ends = min(now + self._lifetime_s, identity.expires or math.inf)
        sealed = self._fernet.encrypt(
            json.dumps({"id": secrets.token_urlsafe(16), "ends": ends, "who": identity.to_session()}).encode()
        ).decode()
        if len(sealed) > SEAL_MAX:
            raise SessionTooLarge(
                f"the token is too large to keep in a cookie ({len(identity.token):,} characters)"
            )
        session.clear()
        session["seal"] = sealed

    def identity(self, session: MutableMapping[str, Any]) -> Identity | None:
        """The signed-in identity, or None when there is none, it ended or it was signed out."""
        opened = self._open(session)
        if opened is None:
            return None
        with self._lock:
            if opened["id"] in self._ended:
                return None
        return Identity.from_session(opened["who"])

    def end(self, session: MutableMapping[str, Any]) -> None:
        """Sign out: this session is refused from now on, whoever holds a copy of it."""
        opened = self._open(session)
        session.clear()
        now = self._clock()
        with self._lock:
            for ended in [i for i, ends in self._ended.items() if ends <= now]:
                del self._ended[ended]
            if opened is not None:
                self._ended[opened["id"]] = float(opened["ends"])

    def _open(self, session: MutableMapping[str, Any]) -> dict[str, Any] | None:
        sealed = session.get("seal")
        if not isinstance(sealed, str):
            return None
        try:
            opened = json.loads(self._fernet.decrypt(sealed.encode()))
        except (InvalidToken, ValueError):
            return None
        if not isinstance(opened, dict) or not isinstance(opened.get("ends"), int | float):
            return None
        return opened if opened["ends"] > self._clock() else None
