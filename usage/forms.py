"""The admin's login form: it says nothing about a password until the name is known to be staff's."""

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import get_user_model

from pantheon.client import client_address
from usage.selectors import user_login_name
from usage.services.logins import login_refuse


class StaffFirstAuthenticationForm(AdminAuthenticationForm):
    """Django's admin form checks the password, then whether the user is staff: a right password of
    a non-staff account got past the first check, an oracle for any account's password. Here a name
    that is not an active staff member's is refused before its password is looked at (counted as a
    failed login, and as slow as one)."""

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is not None and password:
            stored = user_login_name(username=username)
            staff = get_user_model()._default_manager.filter(username=stored, is_staff=True, is_active=True)
            if stored is None or not staff.exists():
                login_refuse(username=username, address=client_address(self.request), password=password)
                raise self.get_invalid_login_error()
        return super().clean()
