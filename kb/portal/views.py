"""The portal's asking pages: ask (a whole page, or the answer streamed), and passage search.
Each view parses the form, calls one act of kb/answering/actions.py with the person's Reader,
and renders what it returns."""

from __future__ import annotations

import logging

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils.translation import gettext
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from inference.answering import Source
from ingest.index.unavailable import IndexUnavailable
from kb.accounts.access import readable_collections, reader_for
from kb.answering import actions
from kb.answering.answers import Answer
from kb.answering.streaming import StreamRendering, encode_answer, event_stream
from kb.portal.forms import AskForm, SearchForm
from kb.portal.http import for_reader, index_unavailable_message, refusals_as_responses, wants_json
from kb.portal.templatetags.answers import source_url, with_citation_links

logger = logging.getLogger(__name__)


@login_required
@require_http_methods(["GET", "POST"])
@refusals_as_responses
def ask(request: HttpRequest) -> HttpResponse:
    """The ask page. Browsers with JavaScript stream the answer from `ask_stream`; without
    it the form posts here and the whole answer comes back in the page."""
    form = AskForm(request.POST or None)
    answer = None
    status = 200
    if request.method == "POST" and not form.is_valid():
        # The same refusal as the stream endpoint and the API: 400 and what is wrong.
        if wants_json(request):
            return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
        status = 400
    elif request.method == "POST":
        try:
            answer = for_reader(
                actions.ask(
                    reader_for(request.user),
                    form.cleaned_data["question"],
                    form.cleaned_data.get("conversation"),
                )
            )
            form = AskForm(initial={"conversation": answer.conversation_id})
        except IndexUnavailable:
            logger.warning("ask refused: the index is unavailable", exc_info=True)
            messages.error(request, index_unavailable_message())
            status = 503
    collections = readable_collections(request.user).select_related("department")
    return render(
        request,
        "portal/ask.html",
        {"form": form, "answer": answer, "collections": collections},
        status=status,
    )


def _done_json(answer: Answer) -> dict[str, object]:
    answer = for_reader(answer)
    return {
        "mode": answer.mode,
        # Rendered on the server: the text escaped, only verified [n] become links.
        "html": str(with_citation_links(answer.text, answer.sources)),
        "cited": answer.cited,
        "notice": answer.notice,
        "model": answer.model,
        "model_version": answer.model_version,
        "seconds": round(answer.seconds, 2),
        "conversation": answer.conversation_id,
        "turn": answer.turn_id,
        "follow_ups": answer.follow_ups,
    }


def _sources_json(sources: list[Source]) -> list[dict[str, object]]:
    return [
        {
            "number": s.number,
            "title": s.title,
            "page": s.page,
            "section": s.section,
            "snippet": " ".join(s.text.split()[:40]),
            "url": source_url(s),
        }
        for s in sources
    ]


STREAM_RENDERING = StreamRendering(
    sources=_sources_json,
    done=_done_json,
    index_unavailable=lambda: {"message": index_unavailable_message()},
    failed=lambda: {"message": gettext("Something went wrong while answering. Try again.")},
)


@login_required
@require_POST
@refusals_as_responses
def ask_stream(request: HttpRequest) -> HttpResponseBase:
    """Server-sent events: `sources`, then `answer` (and `reasoning`) pieces as the model
    writes them, then `done` with the verified answer; `error` if something failed."""
    form = AskForm(request.POST)
    if not form.is_valid():
        return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
    events = actions.stream_answer(
        reader_for(request.user),
        form.cleaned_data["question"],
        form.cleaned_data.get("conversation"),
    )
    return event_stream(encode_answer(events, STREAM_RENDERING))


@login_required
@require_GET
def search(request: HttpRequest) -> HttpResponse:
    """Passages only, no model: the same retrieval (and access filter) the answers use."""
    form = SearchForm(request.GET)
    if not form.is_valid():
        # Too long or with a NUL: refused as the API refuses it, never cut short and run.
        if wants_json(request):
            return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, str(error))
        return render(request, "portal/search.html", {"query": "", "sources": []}, status=400)
    query = form.cleaned_data["q"].strip()
    sources: list[Source] = []
    status = 200
    if query:
        try:
            sources = actions.search(reader_for(request.user), query)
        except IndexUnavailable:
            logger.warning("search refused: the index is unavailable", exc_info=True)
            messages.error(request, index_unavailable_message())
            status = 503
    return render(
        request, "portal/search.html", {"query": query, "sources": sources}, status=status
    )
