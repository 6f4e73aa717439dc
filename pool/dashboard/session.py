"""Dashboard sessions: a signed cookie, a per-session CSRF token, and a device cookie.

The cookie is signed (itsdangerous) with a key derived from the pool's own secrets, HttpOnly and
SameSite=Strict; it carries a random session id and the CSRF token, never the admin key. Every
state-changing request must echo the CSRF token (header `X-CSRF-Token` or form field `csrf_token`),
compared in constant time. Logout revokes the session id in this process, so a copied cookie stops
working on this replica at once and everywhere when it expires.

A successful login also leaves a long-lived signed device cookie (a random id, nothing secret): the
login throttle (throttle.py) gives a browser that carries one a lane of its own.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from datetime import timedelta

from itsdangerous import BadSignature, URLSafeTimedSerializer

from pool.config import Settings
from shared.auth import tokens_match

COOKIE = "pool_dashboard"
LOGIN_COOKIE = "pool_dashboard_login"
DEVICE_COOKIE = "pool_dashboard_device"
DEVICE_MAX_AGE = timedelta(days=30)
MAX_AGE_SECONDS = 12 * 3600
LOGIN_FORM_MAX_AGE_SECONDS = 3600


@dataclass(frozen=True)
class DashboardSession:
    sid: str
    csrf: str


def _signing_key(settings: Settings) -> str:
    # Rotating either secret logs everyone out, which is what an operator rotating keys wants.
    material = f"dashboard-session\0{settings.api_key}".encode()
    return hmac.new(settings.encryption_key.encode(), material, hashlib.sha256).hexdigest()


def _serializer(settings: Settings, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(_signing_key(settings), salt=salt)


class Sessions:
    """Issue, read and revoke sessions; one per app (state lives in this process only)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._cookies = _serializer(settings, "session")
        self._login_forms = _serializer(settings, "login-form")
        self._devices = _serializer(settings, "device")
        self._revoked: dict[str, float] = {}

    def credentials_match(self, given: str) -> bool:
        settings = self._settings
        password = settings.admin_password
        # Both comparisons always run, so timing does not tell which secret was tried.
        key_ok = tokens_match(given, settings.api_key)
        password_ok = tokens_match(given, password) if password else False
        return key_ok or password_ok

    def issue(self) -> tuple[DashboardSession, str]:
        session = DashboardSession(sid=secrets.token_urlsafe(16), csrf=secrets.token_urlsafe(24))
        return session, self._cookies.dumps({"sid": session.sid, "csrf": session.csrf})

    def read(self, cookie: str | None) -> DashboardSession | None:
        if not cookie:
            return None
        try:
            data = self._cookies.loads(cookie, max_age=MAX_AGE_SECONDS)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("sid"), str):
            return None
        if data["sid"] in self._revoked or not isinstance(data.get("csrf"), str):
            return None
        return DashboardSession(sid=data["sid"], csrf=data["csrf"])

    def revoke(self, session: DashboardSession) -> None:
        now = time.time()
        self._revoked = {sid: at for sid, at in self._revoked.items() if now - at < MAX_AGE_SECONDS}
        self._revoked[session.sid] = now

    # -- the login form's own CSRF token (double submit: cookie + hidden field) ------------------

    def login_form_token(self) -> tuple[str, str]:
        token = secrets.token_urlsafe(24)
        return token, self._login_forms.dumps(token)

    def login_form_valid(self, cookie: str | None, field: str | None) -> bool:
        if not cookie or not field:
            return False
        try:
            token = self._login_forms.loads(cookie, max_age=LOGIN_FORM_MAX_AGE_SECONDS)
        except BadSignature:
            return False
        return isinstance(token, str) and tokens_match(field, token)

    # -- the device cookie: a browser that logged in before ------------------------------------

    def device(self, cookie: str | None) -> str | None:
        """The id of a valid device cookie, or None."""
        if not cookie:
            return None
        try:
            device = self._devices.loads(cookie, max_age=int(DEVICE_MAX_AGE.total_seconds()))
        except BadSignature:
            return None
        return device if isinstance(device, str) else None

    def device_cookie(self, device: str | None) -> str:
        """A fresh cookie for `device` (kept) or a new device."""
        return self._devices.dumps(device or secrets.token_urlsafe(16))
