"""The admin's own labels are translatable (issue 19 §2): every model an operator meets in the
admin (registered or shown inline), every field of it and every choice of a field has a name
marked for translation, and the German catalogue translates it; so the German admin reads
"Ladevorgang", "Gekaufte Energie", "Ausstehend"."""

import gettext
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib import admin
from django.urls import reverse
from django.utils.functional import Promise

OURS = ("prepaid", "payments", "charging", "notifications")


def _admin_models() -> list:
    models = set()
    for model, model_admin in admin.site._registry.items():
        if model._meta.app_label in OURS:
            models.add(model)
            models.update(inline.model for inline in model_admin.inlines)
    return sorted(models, key=lambda m: m._meta.label)


@pytest.fixture(scope="module")
def german() -> dict:
    with (Path(settings.BASE_DIR) / "locale" / "de" / "LC_MESSAGES" / "django.mo").open("rb") as fh:
        return gettext.GNUTranslations(fh)._catalog


@pytest.mark.parametrize("model", _admin_models(), ids=lambda m: m._meta.label)
def test_each_admin_model_and_field_has_a_german_name(model, german):
    names = {"verbose_name": model._meta.verbose_name, "verbose_name_plural": model._meta.verbose_name_plural}
    for field in model._meta.get_fields():
        if (field.concrete or field.many_to_many) and not field.auto_created:
            names[field.name] = field.verbose_name
            if field.choices and field.name != "language":  # a language is named in its own language
                names.update({f"{field.name}={value}": label for value, label in field.choices})
    untranslatable = [key for key, name in names.items() if not isinstance(name, Promise)]
    assert not untranslatable, f"{model.__name__}: not marked for translation: {untranslatable}"
    missing = [key for key, name in names.items() if not german.get(str(name._args[0]))]
    assert not missing, f"{model.__name__}: no German for {missing}"


@pytest.mark.django_db
def test_the_german_admin_names_the_models_and_fields(client, world):
    client.force_login(world.staff)
    index = client.get(reverse("admin:index"), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    for name in ("Ladevorgänge", "Fahrzeugverbindungen", "Käufe", "Erstattungen", "Buchungen", "Energiepakete"):
        assert name in index, name
    header = (
        client.get(reverse("admin:payments_purchase_changelist"), HTTP_ACCEPT_LANGUAGE="de")
        .content.decode()
        .split("<tbody")[0]
    )
    assert "Energie" in header and "Betrag" in header and "Amount" not in header
    events = client.get(reverse("admin:payments_stripeevent_changelist"), HTTP_ACCEPT_LANGUAGE="de").content.decode()
    assert "Verarbeitet" in events and "Ausstehend" in events  # the status filter's choices
