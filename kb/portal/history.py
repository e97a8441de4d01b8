"""Conversation history: the asker's list, search, view, delete, export, feedback on answers,
and an auditor's (audited) review of someone else's conversation.

Everything here is the owner's alone: another user's conversation or turn is a 404 and an
`access.denied` record, exactly like a document of another department. An export applies
the same rule as the history page: an answer whose sources the owner can no longer read is
withheld, not exported.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from kb.accounts.access import reader_for
from kb.answering.conversations import (
    own_conversation,
    own_conversations,
    own_turn,
    read_conversation,
)
from kb.answering.models import Feedback
from kb.audit.trail import record
from kb.portal.http import refusals_as_responses, wants_json

MAX_COMMENT = 2000


# How many of a person's latest conversations a history search looks through.
SEARCHED_CONVERSATIONS = 1000


@login_required
@require_GET
def conversation_list(request: HttpRequest) -> HttpResponse:
    """The user's conversations, newest first, searchable by title and question text."""
    query = str(request.GET.get("q", "")).strip()[:200]
    conversations = own_conversations(request.user).annotate(turn_count=Count("turns"))
    conversations = conversations.order_by("-updated_at")
    if query:
        # Titles and questions are encrypted at rest: the search runs here, over the
        # person's own latest conversations, never in SQL.
        needle = query.casefold()
        recent = list(conversations[:SEARCHED_CONVERSATIONS].prefetch_related("turns"))
        matching = [
            c
            for c in recent
            if needle in c.title.casefold()
            or any(needle in turn.question.casefold() for turn in c.turns.all())
        ]
        return render(
            request,
            "portal/conversations.html",
            {"conversations": matching[:200], "query": query},
        )
    conversations = conversations[:200]
    return render(
        request, "portal/conversations.html", {"conversations": conversations, "query": query}
    )


@login_required
@require_POST
@refusals_as_responses
def conversation_delete(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = own_conversation(request.user, conversation_id)
    title = conversation.title
    conversation.delete()
    messages.success(request, _("“%(title)s” was deleted.") % {"title": title})
    return redirect("portal:conversations")


@login_required
@require_GET
@refusals_as_responses
def conversation_export(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """The conversation as Markdown (default) or JSON, as a download."""
    # What the asker reads on the page is what they export: the same rule withholds answers.
    read = read_conversation(reader_for(request.user), conversation_id)
    conversation, turns = read.conversation, read.turns
    export_format = "json" if request.GET.get("format") == "json" else "md"
    if export_format == "json":
        body = json.dumps(
            {
                "title": conversation.title,
                "created_at": conversation.created_at.isoformat(),
                "turns": [
                    {
                        "question": view.turn.question,
                        "answer": None if view.withheld else view.turn.answer,
                        "withheld": view.withheld,
                        "sources": [
                            {"number": s.get("number"), "document": s.get("title")}
                            for s in view.sources
                        ],
                        "asked_at": view.turn.created_at.isoformat(),
                    }
                    for view in turns
                ],
            },
            ensure_ascii=False,
            indent=2,
        )
        content_type = "application/json; charset=utf-8"
    else:
        lines = [f"# {conversation.title}", ""]
        for view in turns:
            turn = view.turn
            lines += [f"## {turn.question}", ""]
            if view.withheld:
                lines += [_("(This answer drew on documents you can no longer access.)"), ""]
                continue
            lines += [turn.answer, ""]
            for source in view.sources:
                lines.append(f"[{source.get('number')}] {source.get('title')}")
            lines.append("")
        body = "\n".join(lines)
        content_type = "text/markdown; charset=utf-8"
    record(
        "conversation.exported",
        target=conversation,
        details={"format": export_format, "turns": len(turns)},
    )
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = (
        f'attachment; filename="conversation-{conversation.pk}.{export_format}"'
    )
    return response


@login_required
@require_POST
@refusals_as_responses
def turn_feedback(request: HttpRequest, turn_id: int) -> HttpResponse:
    """Thumbs up or down (`rating` = 1 or -1) with an optional comment; the asker's only.
    Answers JSON to the page's script, or redirects back for a plain form post."""
    turn = own_turn(request.user, turn_id)
    rating = str(request.POST.get("rating", ""))
    if rating not in ("1", "-1"):
        return JsonResponse({"error": _("Choose helpful or not helpful.")}, status=400)
    comment = str(request.POST.get("comment", "")).strip()[:MAX_COMMENT]
    Feedback.objects.update_or_create(
        turn=turn, defaults={"rating": int(rating), "comment": comment}
    )
    if wants_json(request):
        return JsonResponse({"turn": turn.pk, "rating": int(rating), "comment": comment})
    messages.success(request, _("Thank you for your feedback."))
    return redirect("portal:conversation", conversation_id=turn.conversation_id)


@login_required
@require_GET
@refusals_as_responses
def conversation_detail(request: HttpRequest, conversation_id: int) -> HttpResponse:
    view = read_conversation(reader_for(request.user), conversation_id, may_review=True)
    return render(
        request,
        "portal/conversation.html",
        {"conversation": view.conversation, "turns": view.turns, "reviewing": view.reviewing},
    )
