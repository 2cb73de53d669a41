"""Logging in with a username in any case: ``ADA`` logs in as ``ada``.

Usernames are unique regardless of case (a unique index on ``lower(username)``), so a name in any
case names at most one account; the token endpoint and the admin login both accept it.
"""

from asgiref.sync import sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend


class CaseInsensitiveUsernameBackend(ModelBackend):
    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is not None:
            stored = (
                get_user_model()
                ._default_manager.filter(username__iexact=username)
                .values_list("username", flat=True)
                .first()
            )
            username = stored or username
        # The model backend checks the password (and hashes one for an unknown name, so the
        # answer takes as long either way) and whether the user may log in.
        return super().authenticate(request, username=username, password=password, **kwargs)

    async def aauthenticate(self, request, username=None, password=None, **kwargs):
        return await sync_to_async(self.authenticate)(request, username=username, password=password, **kwargs)
