"""Health, authentication and the model catalog on the wire."""

from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers


class RegisterSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})
    email = serializers.EmailField(required=False, allow_blank=True, default="")

    def validate_username(self, value: str) -> str:
        field = get_user_model()._meta.get_field("username")
        for validator in field.validators:
            try:
                validator(value)
            except DjangoValidationError as exc:
                raise serializers.ValidationError(exc.messages) from exc
        return value

    def validate(self, attrs: dict) -> dict:
        # Django's AUTH_PASSWORD_VALIDATORS, given the would-be user (similarity to the username).
        user = get_user_model()(username=attrs["username"], email=attrs.get("email", ""))
        try:
            validate_password(attrs["password"], user=user)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": exc.messages}) from exc
        return attrs


class RegisterResponseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    token = serializers.CharField()


class CredentialsSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField()


class CostFiguresSerializer(serializers.Serializer):
    """The money of a set of LLM calls, meaning the same in every view (a turn, a session, a user)."""

    cost_usd = serializers.DecimalField(
        max_digits=24, decimal_places=12, help_text="Cost of every call, billed or not."
    )
    billed_cost_usd = serializers.DecimalField(
        max_digits=24, decimal_places=12, help_text="Cost of the calls billed to you."
    )
    credits_burned = serializers.DecimalField(
        max_digits=18, decimal_places=4, help_text="Credits debited from your balance."
    )


class UserUsageTotalsSerializer(CostFiguresSerializer):
    events = serializers.IntegerField(help_text="LLM calls recorded for you (routing included).")
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    oe_tokens = serializers.IntegerField(help_text="Output-equivalent tokens.")


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField()
    credit_balance = serializers.DecimalField(
        max_digits=18, decimal_places=4, help_text="Your balance: the sum of your credit ledger."
    )
    credits_held = serializers.DecimalField(
        max_digits=18, decimal_places=4, help_text="Reserved by your turns and summaries in flight."
    )
    credits_available = serializers.DecimalField(
        max_digits=18,
        decimal_places=4,
        help_text="Balance − held: what a new turn may reserve (its worst case must fit).",
    )
    usage = UserUsageTotalsSerializer()
    budget_warnings = serializers.ListField(
        child=serializers.JSONField(),
        help_text="Your budgets at or past their soft limit this period (as in GET /api/v1/budgets).",
    )


class HealthSerializer(serializers.Serializer):
    # Plain strings, not enums: enum components for these value sets would need ENUM_NAME_OVERRIDES
    # entries to avoid colliding with the other "status" enums of the schema.
    status = serializers.CharField(
        help_text=(
            "`ok`; `degraded` (200) when the cache or the broker is unavailable; `unavailable` (503) "
            "when the database is down."
        )
    )
    database = serializers.CharField(help_text="`ok` or `unavailable`.")
    cache = serializers.CharField(
        help_text=(
            "`ok` (Redis answers), `unavailable` (rate limits count per process), or `local` (the "
            "cache is the process's memory: the embedded default)."
        )
    )
    broker = serializers.CharField(
        help_text="`ok`, `unavailable`, or `eager` (Celery runs tasks in-process: there is no broker)."
    )
