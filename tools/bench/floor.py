"""The floor: the simplest DRF view that does a turn's work, to measure Pantheon against.

A token lookup (the API's own: knox's digest), the LLM call the bench hands it (the very request a
Pantheon turn sent) through the ``openai`` client, then one transaction: ``SELECT … FOR UPDATE`` of
the caller's session (which also reads its last turn index) and 4 inserts into the real tables —
the turn, the user's message, the reply, the usage event. Six SQL statements, whatever the
session's length. No throttling, no history, no budget, no holds: what any backend doing this work
pays at the least. Part of the benchmark, never of the product.
"""

import time
from functools import lru_cache

import openai
from django.conf import settings
from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404
from rest_framework import serializers, status
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from pantheon.api.authentication import BearerTokenAuthentication
from sessions_app.models import ChatSession, Message, Turn
from tools.bench.calls import completion_send
from usage.models import LlmCallEvent


@lru_cache(maxsize=4)
def _client(base_url: str, api_key: str, timeout: float, max_retries: int) -> openai.OpenAI:
    return openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=max_retries)


class FloorTurnSerializer(serializers.Serializer):
    session = serializers.UUIDField()
    request = serializers.DictField()  # a chat completion request body: model, messages, …


class FloorTurnView(APIView):
    authentication_classes = [BearerTokenAuthentication]
    permission_classes = [IsAuthenticated]
    throttle_classes: list = []

    def post(self, request: Request) -> Response:
        serializer = FloorTurnSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        sent = serializer.validated_data["request"]
        client = _client(
            settings.LLM_BASE_URL,
            settings.LLM_API_KEY,
            float(settings.LLM_TIMEOUT_SECONDS),
            int(settings.LLM_MAX_RETRIES),
        )
        started = time.perf_counter()
        completion = completion_send(client, sent)
        latency_ms = int((time.perf_counter() - started) * 1000)
        reply = completion.choices[0].message.content or ""
        user_input = next(
            (m.get("content", "") for m in reversed(sent.get("messages", [])) if m.get("role") == "user"), ""
        )
        last_index = Subquery(
            Turn.objects.filter(session=OuterRef("pk")).order_by("-turn_index").values("turn_index")[:1]
        )
        with transaction.atomic():
            session = get_object_or_404(
                ChatSession.objects.select_for_update(of=("self",)).annotate(
                    last_index=Coalesce(last_index, 0)
                ),
                pk=serializer.validated_data["session"],
                room__owner=request.user,
                deleted_at__isnull=True,
            )
            turn = Turn.objects.create(
                session=session,
                turn_index=session.last_index + 1,
                mode=Turn.Mode.MANUAL,
                user_input=user_input,
                assistant_output=reply,
                status=Turn.Status.COMPLETED,
            )
            Message.objects.create(session=session, turn=turn, role=Message.Role.USER, content=user_input)
            Message.objects.create(
                session=session, turn=turn, role=Message.Role.ASSISTANT, content=reply, order=1
            )
            LlmCallEvent.objects.create(
                user=request.user,
                room_id=session.room_id,
                session_id=session.pk,
                turn_id=turn.pk,
                purpose=LlmCallEvent.Purpose.AGENT_REPLY,
                model_alias=str(sent.get("model", ""))[:64],
                provider_model=completion.model or "",
                provider_generation_id=completion.id or "",
                input_tokens=completion.usage.prompt_tokens if completion.usage else 0,
                output_tokens=completion.usage.completion_tokens if completion.usage else 0,
                latency_ms=latency_ms,
            )
        return Response(
            {"id": str(turn.pk), "turn_index": turn.turn_index, "assistant_output": reply},
            status=status.HTTP_201_CREATED,
        )
