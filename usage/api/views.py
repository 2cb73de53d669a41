"""The model catalog with its current prices."""

from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pantheon.api.schema import UNAUTHENTICATED
from usage.api import serializers as s
from usage.selectors import catalog_list_active, pricing_active_get


class ModelListView(APIView):
    @extend_schema(
        tags=["models"],
        summary="The active model catalog with context windows and current prices",
        responses={200: s.CatalogModelSerializer(many=True), **UNAUTHENTICATED},
    )
    def get(self, request: Request) -> Response:
        pricing = pricing_active_get()
        models = catalog_list_active(pricing=pricing)
        return Response(s.CatalogModelSerializer(models, many=True, context={"pricing": pricing}).data)
