from rest_framework import serializers

from usage.models import LlmModel


class CatalogModelSerializer(serializers.ModelSerializer):
    """A catalog row with its price in the active price list (null prices: not in that list)."""

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

    def _price(self, obj: LlmModel):
        prices = getattr(obj, "active_prices", [])
        return prices[0] if prices else None

    def get_input_usd_per_million(self, obj: LlmModel) -> str | None:
        price = self._price(obj)
        return str(price.input_usd_per_million) if price else None

    def get_output_usd_per_million(self, obj: LlmModel) -> str | None:
        price = self._price(obj)
        return str(price.output_usd_per_million) if price else None

    def get_pricing_version(self, obj: LlmModel) -> str | None:
        version = self.context.get("pricing")
        return version.name if version and self._price(obj) else None
