"""The glossary pages, under /glossary/ (kb/glossary/views.py)."""

from django.urls import URLPattern, path

from kb.glossary import views

app_name = "glossary"

urlpatterns: list[URLPattern] = [
    path("", views.glossary_list, name="index"),
    path("<int:department_id>/", views.entries, name="entries"),
    path("<int:department_id>/<int:entry_id>/", views.entry_edit, name="entry_edit"),
    path("<int:department_id>/<int:entry_id>/delete/", views.entry_delete, name="entry_delete"),
    path("<int:department_id>/export.csv", views.export, name="export"),
    path("<int:department_id>/import/", views.import_file, name="import"),
    path("<int:department_id>/import/confirm/", views.import_confirm, name="import_confirm"),
]
