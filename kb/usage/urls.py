from django.urls import path

from kb.usage import views

app_name = "usage"

urlpatterns = [
    path("", views.report_index, name="report"),
    path("csv/", views.report_csv, name="csv"),
    path("cost/", views.cost, name="cost"),
    path("d/<slug:slug>/", views.department_detail, name="department"),
    path("d/<slug:slug>/quota/", views.quota_edit, name="quota"),
]
