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

    def validate_password(self, value: str) -> str:
        # Django's AUTH_PASSWORD_VALIDATORS, given the would-be user (similarity to the username).
        # Checked beside the username's own rules, so a form names every invalid field at once.
        data = self.initial_data if isinstance(getattr(self, "initial_data", None), dict) else {}
        username, email = data.get("username"), data.get("email")
        user = get_user_model()(
            username=username if isinstance(username, str) else "",
            email=email if isinstance(email, str) else "",
        )
        try:
            validate_password(value, user=user)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from exc
        return value


class RegisterResponseSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    token = serializers.CharField(help_text="A new API token (shown once): `Authorization: Bearer <token>`.")


DEVICE_NAME_HELP = "What the token is for (a device, a script), shown in `GET /auth/tokens`."


class CredentialsSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, help_text=DEVICE_NAME_HELP)


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="The new token, shown once (only its digest is stored).")
    token_id = serializers.UUIDField(help_text="Its id in `GET /auth/tokens` (to revoke it).")
    expires_at = serializers.DateTimeField(help_text="Pushed on by use (`docs/security.md`).")


class ApiTokenSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="public_id")
    name = serializers.CharField(help_text=DEVICE_NAME_HELP)
    created_at = serializers.DateTimeField(source="created")
    last_used_at = serializers.DateTimeField(allow_null=True, help_text="To the minute.")
    expires_at = serializers.DateTimeField(source="expiry", allow_null=True)
    current = serializers.SerializerMethodField(help_text="Whether this request came with it.")

    def get_current(self, token) -> bool:
        return token.pk == getattr(self.context.get("current"), "pk", None)


class LogoutAllResponseSerializer(serializers.Serializer):
    revoked = serializers.IntegerField(help_text="How many tokens were revoked.")


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


class DeploymentHealthSerializer(serializers.Serializer):
    name = serializers.CharField()
    position = serializers.IntegerField(help_text="Order of trial, lowest first.")
    state = serializers.CharField(help_text="`ok`, or `cooling` (calls try it only after every other).")
    cooling_seconds = serializers.FloatField(
        allow_null=True, help_text="Seconds of cool-down left; null: ok."
    )
    recent_failures = serializers.IntegerField(
        help_text="Failures counted in the current window (LLM_COOLDOWN_WINDOW_SECONDS)."
    )


class ModelDeploymentsSerializer(serializers.Serializer):
    alias = serializers.CharField()
    deployments = DeploymentHealthSerializer(many=True)


class HealthDetailSerializer(HealthSerializer):
    models = ModelDeploymentsSerializer(
        many=True,
        help_text="Each active model with active deployments, its deployments in order of trial.",
    )
