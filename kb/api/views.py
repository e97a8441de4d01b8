"""REST API v1, asking: search, ask (JSON or streamed), conversations. Each view parses the
request into a Reader and the act's input, calls one act of kb/answering, and renders it
through the serializers; refusals become problem details (kb/api/problems.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet
from django.http.response import HttpResponseBase
from drf_spectacular.utils import extend_schema
from rest_framework import generics
from rest_framework.request import Request
from rest_framework.response import Response

from kb.answering import actions
from kb.answering.answers import Answer
from kb.answering.conversations import own_conversations, read_conversation
from kb.answering.models import Conversation
from kb.answering.streaming import StreamRendering, encode_answer, event_stream
from kb.api import serializers as s
from kb.api.base import ApiView, TokenAllows, count_use, reader
from kb.api.idempotency import idempotent, release_unfinished_stream, remember_stream
from kb.api.models import ApiToken
from kb.api.openapi import ANSWER_EVENT, IDEMPOTENCY_KEY, list_problems, path_id, problems
from kb.api.problems import index_unavailable_problem, problem, server_error_detail
from kb.api.scope import token_auth
from kb.usage.meter import charged_to


class SearchView(ApiView):
    actions_required = (ApiToken.Action.SEARCH,)

    @extend_schema(
        request=s.SearchRequestSerializer,
        responses={200: s.SearchResponseSerializer, **problems()},
        summary="Passages for a query, with scores and citations; no generation",
    )
    def post(self, request: Request) -> Response:
        body = s.SearchRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        query = body.validated_data["query"]
        sources = actions.search(reader(request), query)
        count_use(request, "search")
        return Response(s.SearchResponseSerializer({"query": query, "passages": sources}).data)


class AskView(ApiView):
    actions_required = (ApiToken.Action.ASK,)

    @extend_schema(
        request=s.AskRequestSerializer,
        parameters=[IDEMPOTENCY_KEY],
        responses={
            (200, "application/json"): s.AnswerSerializer,
            (200, "text/event-stream"): ANSWER_EVENT,
            **problems(404, 409, 422),
        },
        summary="Ask a question: the answer with verified citations, or a stream of events",
        description="With `stream: true` the response is server-sent events: `sources`, "
        "`answer` pieces, then `done` with the whole answer (the JSON body otherwise "
        "returned), or `error` with a problem details object if answering fails midway. "
        "Send `Idempotency-Key` to make a retried request return the first answer.",
    )
    @idempotent
    def post(self, request: Request) -> HttpResponseBase:
        body = s.AskRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        question = body.validated_data["question"]
        conversation = body.validated_data.get("conversation")
        token = token_auth(request).token
        if not body.validated_data["stream"]:
            with charged_to(token):  # the usage meter charges the token
                answer = actions.ask(reader(request), question, conversation)
            count_use(request, "ask", answer)
            return Response(s.AnswerSerializer(answer).data)
        # Refused now (a conversation not the user's: 404) or never: nothing has streamed yet.
        events = actions.stream_answer(reader(request), question, conversation)

        def done(answer: Answer) -> object:
            data = s.AnswerSerializer(answer).data
            count_use(request, "ask", answer)
            remember_stream(request, data)  # a retry with the same key replays this
            return data

        rendering = StreamRendering(
            sources=lambda sources: s.PassageSerializer(sources, many=True).data,
            done=done,
            index_unavailable=lambda: index_unavailable_problem(request.path),
            failed=lambda: problem(500, server_error_detail(), instance=request.path),
        )

        def body_of_stream() -> Iterator[bytes]:
            with charged_to(token):
                try:
                    yield from encode_answer(events, rendering)
                finally:
                    release_unfinished_stream(request)

        return event_stream(body_of_stream())


class ConversationList(generics.ListAPIView[Conversation]):
    permission_classes = [TokenAllows]
    actions_required = (ApiToken.Action.ASK,)
    serializer_class = s.ConversationSerializer

    def get_queryset(self) -> QuerySet[Conversation]:
        return own_conversations(self.request.user)

    @extend_schema(responses={200: s.ConversationSerializer(many=True), **list_problems()})
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


@extend_schema(parameters=[path_id("conversation_id")])
class ConversationDetail(ApiView):
    actions_required = (ApiToken.Action.ASK,)

    @extend_schema(responses={200: s.ConversationDetailSerializer, **problems(404)})
    def get(self, request: Request, conversation_id: int) -> Response:
        view = read_conversation(reader(request), conversation_id)
        data = s.ConversationSerializer(view.conversation).data
        return Response({**data, "turns": s.TurnSerializer(view.turns, many=True).data})
