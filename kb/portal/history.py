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
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from kb.accounts.access import is_auditor, readable_documents
from kb.audit.trail import denied, record
from kb.portal.models import Conversation, Feedback, Turn
from kb.portal.services import turn_for_history
from kb.portal.views import wants_json

MAX_COMMENT = 2000


# How many of a person's latest conversations a history search looks through.
SEARCHED_CONVERSATIONS = 1000


def _own_conversations(request: HttpRequest) -> QuerySet[Conversation]:
    return Conversation.objects.filter(user_id=int(request.user.pk or 0))


def _own_conversation_or_404(request: HttpRequest, conversation_id: int) -> Conversation:
    conversation = _own_conversations(request).filter(pk=conversation_id).first()
    if conversation is None:
        denied(("conversation", conversation_id), reason="not the asker's conversation")
        raise Http404("No such conversation.")
    return conversation


@login_required
@require_GET
def conversation_list(request: HttpRequest) -> HttpResponse:
    """The user's conversations, newest first, searchable by title and question text."""
    query = str(request.GET.get("q", "")).strip()[:200]
    conversations = _own_conversations(request).annotate(turn_count=Count("turns"))
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
def conversation_delete(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _own_conversation_or_404(request, conversation_id)
    title = conversation.title
    conversation.delete()
    messages.success(request, _("“%(title)s” was deleted.") % {"title": title})
    return redirect("portal:conversations")


@login_required
@require_GET
def conversation_export(request: HttpRequest, conversation_id: int) -> HttpResponse:
    """The conversation as Markdown (default) or JSON, as a download."""
    conversation = _own_conversation_or_404(request, conversation_id)
    readable = set(readable_documents(request.user).values_list("pk", flat=True))
    turns = [turn_for_history(t, readable, reviewing=False) for t in conversation.turns.all()]
    export_format = "json" if request.GET.get("format") == "json" else "md"
    if export_format == "json":
        body = json.dumps(
            {
                "title": conversation.title,
                "created_at": conversation.created_at.isoformat(),
                "turns": [
                    {
                        "question": view["turn"].question,  # type: ignore[attr-defined]  # a history view is a dict of mixed values
                        "answer": None if view["withheld"] else view["turn"].answer,  # type: ignore[attr-defined]  # a history view is a dict of mixed values
                        "withheld": view["withheld"],
                        "sources": [
                            {"number": s.get("number"), "document": s.get("title")}
                            for s in view["sources"]  # type: ignore[attr-defined]  # a history view is a dict of mixed values
                        ],
                        "asked_at": view["turn"].created_at.isoformat(),  # type: ignore[attr-defined]  # a history view is a dict of mixed values
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
            turn: Turn = view["turn"]  # type: ignore[assignment]  # a history view is a dict of mixed values
            lines += [f"## {turn.question}", ""]
            if view["withheld"]:
                lines += [_("(This answer drew on documents you can no longer access.)"), ""]
                continue
            lines += [turn.answer, ""]
            for source in view["sources"]:  # type: ignore[attr-defined]  # a history view is a dict of mixed values
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
def turn_feedback(request: HttpRequest, turn_id: int) -> HttpResponse:
    """Thumbs up or down (`rating` = 1 or -1) with an optional comment; the asker's only.
    Answers JSON to the page's script, or redirects back for a plain form post."""
    turn = (
        Turn.objects.filter(pk=turn_id, conversation__user_id=int(request.user.pk or 0))
        .select_related("conversation")
        .first()
    )
    if turn is None:
        denied(("turn", turn_id), reason="feedback on someone else's answer")
        raise Http404("No such answer.")
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
def conversation_detail(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = Conversation.objects.select_related("user").filter(pk=conversation_id).first()
    own = conversation is not None and conversation.user_id == request.user.pk
    reviewing = conversation is not None and not own and is_auditor(request.user)
    if conversation is None or not (own or reviewing):
        denied(("conversation", conversation_id), reason="not the asker's conversation")
        raise Http404("No such conversation.")
    if reviewing:
        record(
            "conversation.read_other",
            target=conversation,
            details={"owner": conversation.user.get_username(), "owner_id": conversation.user_id},
        )
    readable = set(readable_documents(request.user).values_list("pk", flat=True))
    turns = [
        turn_for_history(t, readable, reviewing)
        for t in conversation.turns.select_related("feedback")
    ]
    return render(
        request,
        "portal/conversation.html",
        {"conversation": conversation, "turns": turns, "reviewing": reviewing},
    )
