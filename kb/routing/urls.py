from django.urls import URLPattern, path

from kb.routing import views

app_name = "routing"

urlpatterns: list[URLPattern] = [
    path("", views.policy, name="policy"),
]
