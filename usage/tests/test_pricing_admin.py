"""Price lists in the admin: the active (and every once-active) list is read-only; "publish as new
version" copies it into a draft; "activate" switches to a draft atomically and keeps the old one."""

import threading
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection

from usage.models import PRICE_RATES, LlmModel, ModelPrice, PricingVersion
from usage.services.pricing import pricing_version_activate, pricing_version_copy
from usage.tests.factories import UserFactory

URL = "/admin/usage/pricingversion/"


@pytest.fixture
def staff_client(client, db):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def active(db):
    return PricingVersion.objects.get(is_active=True)  # seeded by the catalog migration


def test_the_seeded_active_list_counts_as_activated(active):
    assert active.activated_at is not None and not active.is_draft


def test_the_active_list_cannot_be_edited_in_place(staff_client, active):
    page = staff_client.get(f"{URL}{active.pk}/change/").content.decode()
    assert 'name="_save"' not in page  # a view page, not a form
    price = active.prices.first()
    response = staff_client.post(
        f"{URL}{active.pk}/change/", {"name": "hacked", "notes": "", "prices-TOTAL_FORMS": "0"}
    )
    assert response.status_code == 403
    active.refresh_from_db()
    assert active.name != "hacked" and active.prices.get(pk=price.pk).input_usd_per_million == (
        price.input_usd_per_million
    )
    assert staff_client.post(f"{URL}{active.pk}/delete/", {"post": "yes"}).status_code == 403


def test_publish_as_new_version_copies_the_prices_into_an_inactive_draft(staff_client, active):
    response = staff_client.post(URL, {"action": "publish_new_version", "_selected_action": [active.pk]})
    draft = PricingVersion.objects.exclude(pk=active.pk).get(activated_at=None)
    assert response.status_code == 302 and response["Location"] == f"{URL}{draft.pk}/change/"
    assert draft.is_draft and not draft.is_active
    copied = set(draft.prices.values_list("model_id", *PRICE_RATES))
    assert copied == set(active.prices.values_list("model_id", *PRICE_RATES))
    page = staff_client.get(f"{URL}{draft.pk}/change/").content.decode()
    assert 'name="_save"' in page  # a draft is a form


def test_a_draft_is_edited_then_activated_and_the_old_list_is_kept_read_only(staff_client, active):
    draft = pricing_version_copy(version=active)
    deepseek = draft.prices.get(model__alias="deepseek")
    ModelPrice.objects.filter(pk=deepseek.pk).update(input_usd_per_million=Decimal("9.5"))

    response = staff_client.post(URL, {"action": "activate", "_selected_action": [draft.pk]})
    assert response.status_code == 302 and response["Location"] == f"{URL}{draft.pk}/activate/"
    draft.refresh_from_db()
    assert draft.is_draft  # the action only asks
    staff_client.post(f"{URL}{draft.pk}/activate/", {"post": "yes"})
    draft.refresh_from_db()
    active.refresh_from_db()
    assert draft.is_active and draft.activated_at is not None
    assert not active.is_active and not active.is_draft  # retired, frozen
    assert PricingVersion.objects.filter(is_active=True).count() == 1
    assert staff_client.get(f"{URL}{active.pk}/change/").status_code == 200
    assert staff_client.post(f"{URL}{active.pk}/change/", {"name": "x"}).status_code == 403
    listing = staff_client.get(URL).content.decode()
    assert "retired (read-only)" in listing and "delete_selected" not in listing


def test_a_draft_missing_a_model_price_is_not_activated(staff_client, active):
    draft = pricing_version_copy(version=active)
    draft.prices.filter(model__alias="qwen").delete()
    response = staff_client.post(f"{URL}{draft.pk}/activate/", {"post": "yes"}, follow=True)
    assert "has no price for qwen" in response.content.decode()
    active.refresh_from_db()
    assert active.is_active and PricingVersion.objects.filter(is_active=True).count() == 1


def test_actions_need_exactly_one_list(staff_client, active):
    draft = pricing_version_copy(version=active)
    response = staff_client.post(
        URL, {"action": "activate", "_selected_action": [active.pk, draft.pk]}, follow=True
    )
    assert "Select exactly one price list." in response.content.decode()
    assert PricingVersion.objects.get(is_active=True) == active


def test_activation_shows_the_changes_against_the_active_list_and_asks_to_confirm(staff_client, active):
    draft = pricing_version_copy(version=active)
    deepseek = active.prices.get(model__alias="deepseek")
    draft.prices.filter(model__alias="deepseek").update(
        input_usd_per_million=Decimal("9.5"), cached_input_usd_per_million=Decimal("0.125")
    )

    change_page = staff_client.get(f"{URL}{draft.pk}/change/").content.decode()
    assert f'href="{URL}{draft.pk}/activate/"' in change_page and "Activate…" in change_page
    assert "/activate/" not in staff_client.get(f"{URL}{active.pk}/change/").content.decode()

    page = staff_client.get(f"{URL}{draft.pk}/activate/")
    assert page.status_code == 200
    changes = {c.alias: c for c in page.context["changes"]}
    assert [c.alias for c in page.context["changes"] if c.changed] == ["deepseek"]
    rates = {r.rate: r for r in changes["deepseek"].rates}
    assert (rates["input"].old, rates["input"].new) == (deepseek.input_usd_per_million, Decimal("9.5"))
    assert (rates["cache read"].old, rates["cache read"].new) == (
        deepseek.cached_input_usd_per_million,
        Decimal("0.125"),
    )
    assert not rates["output"].changed
    html = page.content.decode()
    assert "1 model changes price." in html and "in place of" in html and 'name="post" value="yes"' in html
    assert f"<del>{deepseek.input_usd_per_million}</del> → <strong>9.500000</strong>" in html
    draft.refresh_from_db()
    assert draft.is_draft  # looking changes nothing

    response = staff_client.post(f"{URL}{draft.pk}/activate/", {"post": "yes"}, follow=True)
    assert "is now the active price list" in response.content.decode()
    assert PricingVersion.objects.get(is_active=True) == draft
    # an active list is not activated again
    response = staff_client.get(f"{URL}{draft.pk}/activate/")
    assert response.status_code == 302 and response["Location"] == f"{URL}{draft.pk}/change/"


def test_activation_needs_change_permission(client, active):
    draft = pricing_version_copy(version=active)
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename="view_pricingversion"))
    client.force_login(viewer)
    assert client.post(f"{URL}{draft.pk}/activate/", {"post": "yes"}).status_code == 403
    draft.refresh_from_db()
    assert draft.is_draft


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_simultaneous_activations_leave_exactly_one_active_list():
    LlmModel.objects.update(is_active=False)  # completeness is not what this test is about
    drafts = [PricingVersion.objects.create(name=f"draft {n}") for n in range(4)]
    errors: list[Exception] = []
    barrier = threading.Barrier(len(drafts))

    def activate(version):
        try:
            barrier.wait()
            pricing_version_activate(version=version)
        except Exception as exc:  # any failure (a unique violation) is what this test looks for
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=activate, args=(d,)) for d in drafts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert PricingVersion.objects.filter(is_active=True).count() == 1
    assert (
        PricingVersion.objects.filter(pk__in=[d.pk for d in drafts], activated_at__isnull=True).count() == 0
    )
