from decimal import Decimal

import factory
from django.contrib.auth import get_user_model

from usage.services.accounts import credit_account_open


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", "correct-horse-battery")

    @factory.post_generation
    def credits(obj, create, extracted, **kwargs):
        if create:
            obj.save()
            credit_account_open(
                user=obj, opening_balance=Decimal(extracted) if extracted is not None else None
            )
