from django import template

from kb.accounts.backends import company_sign_in_enabled

register = template.Library()


@register.simple_tag
def company_sign_in() -> bool:
    """Whether to offer "Sign in with your company account" (OpenID Connect is on)."""
    return company_sign_in_enabled()
