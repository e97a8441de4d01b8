from django.urls import path

from kb.audit import views

app_name = "audit"

urlpatterns = [
    path("", views.record_list, name="records"),
    path("records/<int:seq>/", views.record_detail, name="record"),
    path("documents/<int:document_id>/", views.document_access, name="document"),
    path("verify/", views.verify_trail, name="verify"),
    path("export/", views.export, name="export"),
]
