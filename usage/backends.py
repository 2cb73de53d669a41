"""Logging in: one backend behind every login path (the token endpoint, the browsable API's form and
the admin's), so one limit on password guessing covers them all (``usage.services.logins``).

A username matches as it is compared (``usage.usernames``): ``ADA`` logs in as ``ada``, ``ΣΟΦΟΣ`` as
``σοφος``; such names are one account.
"""

from asgiref.sync import sync_to_async
from django.contrib.auth.backends import ModelBackend

from pantheon.client import client_address
from usage.selectors import user_login_name
from usage.services.logins import login_failed, login_guard


class CaseInsensitiveUsernameBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is None or password is None:
            return None
        address = client_address(request) if request is not None else ""
        login_guard(username=username, address=address)  # locked: LoginLocked (429), nothing hashed
        stored = user_login_name(username=username)
        # The model backend checks the password (and hashes one for an unknown name, so the
        # answer takes as long either way) and whether the user may log in.
        user = super().authenticate(request, username=stored or username, password=password, **kwargs)
        if user is None:
            login_failed(username=username, address=address)
        return user

    async def aauthenticate(self, request, username=None, password=None, **kwargs):
        return await sync_to_async(self.authenticate)(request, username=username, password=password, **kwargs)
