"""Balance management in the admin: the "Adjust credit balance" action (on credit accounts and on
users), shown as a form between the list and the change, written by ``usage.services.accounts``."""

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.db import transaction
from django.template.response import TemplateResponse

from pantheon.errors import ApplicationError
from usage.formatting import credits_display, credits_with_unit
from usage.models import CREDITS, CreditAccount
from usage.services.accounts import NOTE_MAX_LENGTH, credit_adjust


class CreditAdjustForm(forms.Form):
    amount = forms.DecimalField(
        max_digits=CREDITS["max_digits"],
        decimal_places=CREDITS["decimal_places"],
        help_text="Credits to add; a negative amount takes credits back (at most what is available).",
    )
    note = forms.CharField(max_length=NOTE_MAX_LENGTH, help_text="Why: kept in the ledger with your name.")


def credit_figures_display(account: CreditAccount) -> dict[str, str]:
    return {
        "balance": credits_display(account.balance),
        "held": credits_display(account.held),
        "available": credits_display(account.available),
    }


def credit_adjust_action(modeladmin: admin.ModelAdmin, request, users: list) -> TemplateResponse | None:
    """The action's two steps: the form (first POST from the list), then the adjustment of every
    selected user in one transaction (all or none), back to the list with a message."""
    form = CreditAdjustForm(request.POST if "apply" in request.POST else None)
    if form.is_valid():
        amount, note = form.cleaned_data["amount"], form.cleaned_data["note"]
        target = None
        try:
            with transaction.atomic():
                for target in users:
                    credit_adjust(user=target, amount=amount, note=note, actor=request.user)
        except ApplicationError as exc:
            form.add_error(None, f"{target.username}: {exc.message} Nothing was changed.")
        else:
            names = ", ".join(u.username for u in users[:5]) + (" …" if len(users) > 5 else "")
            change = credits_with_unit(amount, signed=True)
            balances = "1 balance" if len(users) == 1 else f"{len(users)} balances"
            modeladmin.message_user(request, f"Adjusted {balances} by {change}: {names}.", messages.SUCCESS)
            return None
    accounts = {a.user_id: credit_figures_display(a) for a in CreditAccount.objects.filter(user__in=users)}
    context = {
        **modeladmin.admin_site.each_context(request),
        "title": "Adjust credit balance",
        "opts": modeladmin.model._meta,
        "form": form,
        "rows": [(u, accounts.get(u.pk)) for u in users],
        "action": request.POST.get("action", ""),
        "selected": request.POST.getlist(ACTION_CHECKBOX_NAME),
        "select_across": request.POST.get("select_across", "0"),
        "action_checkbox_name": ACTION_CHECKBOX_NAME,
    }
    return TemplateResponse(request, "admin/usage/credit_adjust.html", context)
