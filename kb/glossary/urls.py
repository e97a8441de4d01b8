from django.urls import URLPattern

app_name = "glossary"

urlpatterns: list[URLPattern] = []
