"""The language of each page: the driver's own choice first, then the browser's.

Django's LocaleMiddleware picks the language from the switch's cookie or Accept-Language;
AccountLanguageMiddleware (after authentication) replaces it with the language a signed-in person
chose with the switch (prepaid.models.Profile), so it follows them to every browser and to their
emails. The choice is read once per login session and kept in it (no query per request).
`set_language` is the switch on every page: Django's view (cookie, safe redirect back) that also
keeps the choice on the account.
"""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django.utils.translation import gettext
from django.views.decorators.http import require_POST
from django.views.i18n import set_language as django_set_language

from prepaid import selectors as wallet_selectors
from prepaid import services as wallet_services
from sessions.controller.step import REASONS

SESSION_KEY = "account_language"


def _remember(request: HttpRequest, language: str) -> None:
    request.session[SESSION_KEY] = [request.user.pk, language]


def account_language(request: HttpRequest) -> str:
    """The language the signed-in person chose ("" for none, or when nobody is signed in)."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return ""
    kept = request.session.get(SESSION_KEY)
    if isinstance(kept, list) and len(kept) == 2 and kept[0] == user.pk:
        return kept[1] if kept[1] in dict(settings.LANGUAGES) else ""
    language = wallet_selectors.language_for(user=user)
    _remember(request, language)
    return language


def remember_account_language(sender, request, user, **kwargs) -> None:
    """At login (the user_logged_in signal): keep the account's language in the session."""
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_KEY] = [user.pk, wallet_selectors.language_for(user=user)]


class AccountLanguageMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        language = account_language(request)
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = language
        return self.get_response(request)


@require_POST
def set_language(request: HttpRequest) -> HttpResponse:
    """The switch: the cookie for everyone (Django's view), and the account for a signed-in person."""
    response = django_set_language(request)
    language = request.POST.get("language", "")
    if language in dict(settings.LANGUAGES) and request.user.is_authenticated:
        wallet_services.profile_set_language(user=request.user, language=language)
        _remember(request, language)
    return response


def remember_language_at_signup(request: HttpRequest, user) -> None:
    """A new account keeps the language it signed up in: its first emails come in it too."""
    language = translation.get_language() or settings.LANGUAGE_CODE
    language = language.split("-")[0]
    if language in dict(settings.LANGUAGES):
        wallet_services.profile_set_language(user=user, language=language)
        _remember(request, language)


def session_reason(session) -> str:
    """The session's reason in the current language: its standard sentence
    (sessions.controller.step.REASONS, stored in English) translated; any other text as stored."""
    english = REASONS.get(session.reason)
    if english and session.reason_message == english:
        return gettext(english)
    return session.reason_message
