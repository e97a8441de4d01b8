from django.urls import path

from kb.portal import dashboard, history, library_views, model_views, views

app_name = "portal"

urlpatterns = [
    path("", views.ask, name="ask"),
    path("ask/stream/", views.ask_stream, name="ask_stream"),
    path("search/", views.search, name="search"),
    path("conversations/", history.conversation_list, name="conversations"),
    path("conversations/<int:conversation_id>/", history.conversation_detail, name="conversation"),
    path(
        "conversations/<int:conversation_id>/delete/",
        history.conversation_delete,
        name="conversation_delete",
    ),
    path(
        "conversations/<int:conversation_id>/export/",
        history.conversation_export,
        name="conversation_export",
    ),
    path("answers/<int:turn_id>/feedback/", history.turn_feedback, name="feedback"),
    path("models/", model_views.configured_models, name="models"),
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    path("collections/", library_views.collection_list, name="collections"),
    path("collections/<int:collection_id>/", library_views.collection_detail, name="collection"),
    path("collections/<int:collection_id>/status/", library_views.document_status, name="status"),
    path("documents/<int:document_id>/", library_views.document_detail, name="document"),
    path("documents/<int:document_id>/download/", library_views.document_download, name="download"),
    path("documents/<int:document_id>/delete/", library_views.document_delete, name="delete"),
    path(
        "documents/<int:document_id>/versions/<int:number>/retry/",
        library_views.version_retry,
        name="retry",
    ),
]
