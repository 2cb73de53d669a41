from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from usage.models import LlmModel


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
        if get_user_model().objects.filter(username__iexact=value).exists():
            raise serializers.ValidationError("This username is taken.")
        return value

    def validate(self, attrs: dict) -> dict:
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


class TokenRequestSerializer(serializers.Serializer):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(write_only=True, max_length=128, style={"input_type": "password"})


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField()


class UserUsageTotalsSerializer(serializers.Serializer):
    events = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    cost_usd = serializers.DecimalField(max_digits=24, decimal_places=12)
    credits_burned = serializers.DecimalField(max_digits=18, decimal_places=4)


class MeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField()
    credit_balance = serializers.DecimalField(max_digits=18, decimal_places=4)
    usage = UserUsageTotalsSerializer()


class CatalogModelSerializer(serializers.ModelSerializer):
    input_usd_per_million = serializers.SerializerMethodField()
    output_usd_per_million = serializers.SerializerMethodField()
    pricing_version = serializers.SerializerMethodField()

    class Meta:
        model = LlmModel
        fields = [
            "alias",
            "provider_model",
            "display_name",
            "context_window",
            "max_output_tokens",
            "input_usd_per_million",
            "output_usd_per_million",
            "pricing_version",
        ]
        read_only_fields = fields

    def _price(self, obj):
        prices = getattr(obj, "active_prices", [])
        return prices[0] if prices else None

    def get_input_usd_per_million(self, obj) -> str | None:
        price = self._price(obj)
        return str(price.input_usd_per_million) if price else None

    def get_output_usd_per_million(self, obj) -> str | None:
        price = self._price(obj)
        return str(price.output_usd_per_million) if price else None

    def get_pricing_version(self, obj) -> str | None:
        price = self._price(obj)
        return price.version.name if price else None


class HealthSerializer(serializers.Serializer):
    status = serializers.CharField()
    database = serializers.CharField()
    broker = serializers.CharField()
