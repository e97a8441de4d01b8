"""REST API v1, the token's own business: its usage, the audit trail (auditors), rotating and
revoking itself."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import generics, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from kb.accounts.access import is_auditor
from kb.api import serializers as s
from kb.api.base import ApiView, TokenAllows
from kb.api.models import ApiToken, TokenUsage
from kb.api.openapi import list_problems, problems
from kb.api.scope import token_auth
from kb.audit.models import AuditRecord
from kb.audit.trail import denied, record


class UsageView(ApiView):
    actions_required = tuple(ApiToken.Action.values)

    @extend_schema(responses={200: s.UsageResponseSerializer, **problems()})
    def get(self, request: Request) -> Response:
        token = token_auth(request).token
        rows = TokenUsage.objects.filter(token=token).order_by("-day", "action")[:400]
        return Response({"token": token.prefix, "usage": s.UsageSerializer(rows, many=True).data})


class AuditRecords(generics.ListAPIView[AuditRecord]):
    permission_classes = [TokenAllows]
    actions_required = (ApiToken.Action.ADMIN,)
    serializer_class = s.AuditRecordSerializer

    def get_queryset(self) -> QuerySet[AuditRecord]:
        if not is_auditor(self.request.user):
            denied(("audit", "trail"), reason="not an auditor", via="api")
            raise PermissionDenied("Only auditors may read the audit trail.")
        records = AuditRecord.objects.all()
        params = self.request.query_params
        for name in ("action", "actor"):
            if "\x00" in params.get(name, ""):  # PostgreSQL text cannot hold NUL (was a 500)
                raise ValidationError({name: ["Must not contain NUL characters."]})
        if params.get("action"):
            records = records.filter(action=params["action"])
        if params.get("actor"):
            records = records.filter(actor=params["actor"])
        if str(params.get("after_seq", "")).isdigit():
            records = records.filter(seq__gt=int(params["after_seq"]))
        record("audit.exported", details={"format": "api", "filters": dict(params.items())})
        return records

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        return self.get_paginated_response([r.as_export_dict() for r in page or []])

    @extend_schema(
        parameters=[
            OpenApiParameter("action", str, required=False),
            OpenApiParameter("actor", str, required=False),
            OpenApiParameter("after_seq", int, required=False),
        ],
        responses={200: s.AuditRecordSerializer(many=True), **list_problems()},
        summary="Audit records, newest first (auditor accounts, `admin` action)",
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class RotateToken(ApiView):
    actions_required = tuple(ApiToken.Action.values)

    @extend_schema(
        request=s.RotateRequestSerializer,
        responses={201: s.NewTokenSerializer, **problems()},
        summary="Replace this token with a new one; the old one works for a grace period",
    )
    def post(self, request: Request) -> Response:
        body = s.RotateRequestSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        old = token_auth(request).token
        if old.replaced_by_id is not None:
            raise ValidationError({"token": ["This token was already rotated."]})
        with transaction.atomic():
            new, secret = ApiToken.issue(
                account=old.account,
                name=old.name,
                actions=list(old.actions),
                rate_limit_per_minute=old.rate_limit_per_minute,
                expires_at=old.expires_at,
            )
            new.departments.set(old.departments.all())
            new.collections.set(old.collections.all())
            grace_end = timezone.now() + timedelta(hours=body.validated_data["grace_hours"])
            old.replaced_by = new
            old.expires_at = min(grace_end, old.expires_at) if old.expires_at else grace_end
            old.save(update_fields=["replaced_by", "expires_at"])
            record(
                "token.created",
                target=new,
                details={"prefix": new.prefix, "rotated_from": old.prefix},
            )
        return Response(
            {
                "token": secret,
                "prefix": new.prefix,
                "expires_at": new.expires_at,
                "old_token_expires_at": old.expires_at,
            },
            status=201,
        )


class RevokeToken(ApiView):
    actions_required = tuple(ApiToken.Action.values)

    @extend_schema(request=None, responses={204: None, **problems()}, summary="Revoke this token")
    def post(self, request: Request) -> Response:
        token = token_auth(request).token
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
        record("token.revoked", target=token, details={"prefix": token.prefix, "by": "itself"})
        return Response(status=status.HTTP_204_NO_CONTENT)
