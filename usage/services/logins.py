"""One limit on password guessing for every login path: the API's token endpoint, the browsable API's
login form and the admin's (all three go through ``usage.backends``).

Failures are counted per username and per client address (``pantheon.client``: through the trusted
proxies only) in a fixed window of ``LOGIN_FAILURE_WINDOW_SECONDS``, atomically on Redis
(``pantheon.limits``). From the ``LOGIN_FAILURES_PER_USERNAME``-th failure of a name (or the
``LOGIN_FAILURES_PER_ADDRESS``-th of an address) on, each further failure locks that name (or
address) for a rising delay: ``LOGIN_LOCKOUT_BASE_SECONDS`` doubled per failure past the limit, at
most ``LOGIN_LOCKOUT_MAX_SECONDS``. A locked login is refused before its password is hashed, so
guessing costs the server nothing either. A success does not reset a count: one known password must
not buy more guesses at others, and the window ends by itself.
"""

from django.conf import settings
from django.contrib.auth.hashers import make_password

from pantheon.errors import TooManyRequests
from pantheon.limits import lock_remaining, lock_set, window_hit
from usage.usernames import username_normalize


class LoginLocked(TooManyRequests):
    default_message = "Too many failed logins. Try again later."


def _keys(*, username: str, address: str) -> list[tuple[str, int]]:
    """The counters a login attempt belongs to, each with its limit."""
    return [
        (f"login:name:{username_normalize(username)}", settings.LOGIN_FAILURES_PER_USERNAME),
        (f"login:addr:{address}", settings.LOGIN_FAILURES_PER_ADDRESS),
    ]


def login_guard(*, username: str, address: str) -> None:
    """``LoginLocked`` (with when to retry) while the name or the address is locked."""
    wait = max(lock_remaining(f"{key}:lock") for key, _ in _keys(username=username, address=address))
    if wait:
        raise LoginLocked(f"Too many failed logins. Try again in {wait} seconds.", retry_after_seconds=wait)


def login_failed(*, username: str, address: str) -> None:
    window = settings.LOGIN_FAILURE_WINDOW_SECONDS
    for key, limit in _keys(username=username, address=address):
        hit = window_hit(key, limit=limit, window_seconds=window)
        if hit.count >= limit:
            past = hit.count - limit
            delay = settings.LOGIN_LOCKOUT_BASE_SECONDS * 2 ** min(past, 30)
            lock_set(f"{key}:lock", seconds=min(delay, settings.LOGIN_LOCKOUT_MAX_SECONDS))


def login_refuse(*, username: str, address: str, password: str) -> None:
    """A login refused without checking its password (e.g. the admin's form for a non-staff
    name): locked or not as any other, counted as a failure, and as slow as a password check."""
    login_guard(username=username, address=address)
    make_password(password)
    login_failed(username=username, address=address)
