from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from kb.api import library_views, token_views, views

app_name = "api"

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    # The split view serves its start-up script as a file: the docs page passes the CSP.
    path("docs/", SpectacularSwaggerSplitView.as_view(url_name="api:schema"), name="docs"),
    path("v1/search", views.SearchView.as_view(), name="search"),
    path("v1/ask", views.AskView.as_view(), name="ask"),
    path("v1/collections", library_views.CollectionList.as_view(), name="collections"),
    path(
        "v1/collections/<int:collection_id>",
        library_views.CollectionDetail.as_view(),
        name="collection",
    ),
    path(
        "v1/collections/<int:collection_id>/documents",
        library_views.CollectionDocuments.as_view(),
        name="collection_documents",
    ),
    path("v1/documents/<int:document_id>", library_views.DocumentDetail.as_view(), name="document"),
    path(
        "v1/documents/<int:document_id>/download",
        library_views.DocumentDownload.as_view(),
        name="download",
    ),
    path("v1/conversations", views.ConversationList.as_view(), name="conversations"),
    path(
        "v1/conversations/<int:conversation_id>",
        views.ConversationDetail.as_view(),
        name="conversation",
    ),
    path("v1/usage", token_views.UsageView.as_view(), name="usage"),
    path("v1/audit/records", token_views.AuditRecords.as_view(), name="audit_records"),
    path("v1/token/rotate", token_views.RotateToken.as_view(), name="token_rotate"),
    path("v1/token/revoke", token_views.RevokeToken.as_view(), name="token_revoke"),
]
