from rest_framework.pagination import CursorPagination


class NewestFirstCursorPagination(CursorPagination):
    """Cursor pagination: stable under inserts, no counting, `next`/`previous` links."""

    ordering = "-pk"
    page_size_query_param = "page_size"
    max_page_size = 500
