"""Your budgets: every limit on your spend with its figures in the current period, and your own
tighter limits on your rooms and API keys (docs/budgets.md)."""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from openai_compat.selectors import api_key_list
from pantheon.api.schema import ERROR_RESPONSES, INVALID, NOT_FOUND, UNAUTHENTICATED
from pantheon.errors import NotFound
from rooms.selectors import room_get
from usage.models import Budget
from usage.services.budgets import budget_statuses, budget_user_delete, budget_user_set


class BudgetSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    scope = serializers.ChoiceField(choices=["user", "room", "api_key"])
    room_id = serializers.UUIDField(allow_null=True)
    api_key_id = serializers.IntegerField(allow_null=True)
    model_alias = serializers.CharField(allow_null=True)
    period = serializers.ChoiceField(choices=Budget.Period.choices)
    set_by = serializers.ChoiceField(choices=Budget.SetBy.choices)
    limit_credits = serializers.DecimalField(max_digits=18, decimal_places=4)
    spent_credits = serializers.DecimalField(max_digits=18, decimal_places=4)
    held_credits = serializers.DecimalField(max_digits=18, decimal_places=4)
    remaining_credits = serializers.DecimalField(max_digits=18, decimal_places=4)
    period_start = serializers.DateTimeField()
    resets_at = serializers.DateTimeField()


class BudgetCreateSerializer(serializers.Serializer):
    room_id = serializers.UUIDField(required=False, allow_null=True)
    api_key_id = serializers.IntegerField(required=False, allow_null=True)
    period = serializers.ChoiceField(choices=Budget.Period.choices)
    limit_credits = serializers.DecimalField(max_digits=18, decimal_places=4, min_value=0)
    model_alias = serializers.CharField(required=False, allow_blank=True, max_length=64, default="")


class BudgetListView(APIView):
    @extend_schema(
        tags=["budgets"],
        summary="Your budgets, with what each has spent and held in its current period",
        responses={200: BudgetSerializer(many=True), **UNAUTHENTICATED},
    )
    def get(self, request: Request) -> Response:
        statuses = budget_statuses(Budget.objects.filter(user=request.user).order_by("id"))
        return Response(BudgetSerializer([s.as_dict() for s in statuses], many=True).data)

    @extend_schema(
        tags=["budgets"],
        summary="Set a tighter limit on one of your rooms or API keys",
        request=BudgetCreateSerializer,
        responses={201: BudgetSerializer, **INVALID, **UNAUTHENTICATED, **NOT_FOUND},
    )
    def post(self, request: Request) -> Response:
        serializer = BudgetCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if data.get("room_id"):
            room_get(user=request.user, room_id=data["room_id"])  # 404 unless yours
        if (
            data.get("api_key_id")
            and not api_key_list(user=request.user).filter(pk=data["api_key_id"]).exists()
        ):
            raise NotFound()
        budget = budget_user_set(user=request.user, **data)
        [state] = budget_statuses([budget])
        return Response(BudgetSerializer(state.as_dict()).data, status=status.HTTP_201_CREATED)


class BudgetDetailView(APIView):
    @extend_schema(
        tags=["budgets"],
        summary="Remove a budget you set (an operator's stays)",
        responses={204: None, **ERROR_RESPONSES},
    )
    def delete(self, request: Request, budget_id: int) -> Response:
        budget = Budget.objects.filter(user=request.user, pk=budget_id).first()
        if budget is None:
            raise NotFound()
        budget_user_delete(budget=budget)
        return Response(status=status.HTTP_204_NO_CONTENT)
