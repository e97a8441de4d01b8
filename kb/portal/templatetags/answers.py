"""Render an answer's [n] markers as links to the cited passage, escaping everything else."""

from __future__ import annotations

import re

from django import template
from django.urls import reverse
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

from inference.answering import Source

register = template.Library()

_CITATION = re.compile(r"\[(\d{1,3})\]")


def source_url(source: Source) -> str:
    return reverse("portal:document", args=[source.document_id]) + f"#chunk-{source.chunk_id}"


@register.filter
def with_citation_links(text: str, sources: list[Source]) -> SafeString:
    by_number = {s.number: s for s in sources}
    parts: list[str] = []
    position = 0
    for match in _CITATION.finditer(text):
        parts.append(str(escape(text[position : match.start()])))
        source = by_number.get(int(match.group(1)))
        if source is None:
            parts.append(str(escape(match.group(0))))
        else:
            parts.append(
                format_html(
                    '<a class="cite" href="{}" title="{}">[{}]</a>',
                    source_url(source),
                    source.location,
                    source.number,
                )
            )
        position = match.end()
    parts.append(str(escape(text[position:])))
    html = "".join(parts).replace("\n\n", "</p><p>").replace("\n", "<br>")
    return mark_safe(f"<p>{html}</p>")  # noqa: S308 - every piece above is escaped


@register.filter
def link_to(source: Source) -> str:
    return source_url(source)
