from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group, User
from django.core.management.base import BaseCommand, CommandParser


class Command(BaseCommand):
    help = "Creates or changes a person at the provider; prints their subject (sub)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--password", required=True)
        parser.add_argument("--email", default="")
        parser.add_argument("--given-name", default="")
        parser.add_argument("--family-name", default="")
        parser.add_argument("--groups", default="", help="comma-separated; replaces the groups")
        parser.add_argument("--rename-to", default="", help="a new username for the person")

    def handle(self, *args: Any, **options: Any) -> None:
        person, _ = User.objects.get_or_create(username=options["username"])
        person.set_password(options["password"])
        person.email = options["email"]
        person.first_name = options["given_name"]
        person.last_name = options["family_name"]
        if options["rename_to"]:
            person.username = options["rename_to"]
        person.save()
        names = [name for name in options["groups"].split(",") if name]
        person.groups.set([Group.objects.get_or_create(name=name)[0] for name in names])
        self.stdout.write(str(person.pk))
