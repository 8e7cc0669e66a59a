"""The German and English catalogues (locale/) are complete and compiled.

- every translatable string in the code and templates is in both catalogues (the strings are
  extracted again, as `make messages` does, into a temporary directory and compared);
- every German entry is translated and none is fuzzy (a guess by msgmerge, never checked);
- the committed .mo files say what their .po files say (a .po edited without `make messages`).
Needs the gettext tools (xgettext, msgfmt): `apt-get install gettext`; CI installs them.
"""

from __future__ import annotations

import ast
import gettext
import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings

ROOT = Path(settings.BASE_DIR)
LOCALES = ROOT / "locale"
IGNORE = ["tests", "vehicle_sim", "benchmarks", "node_modules", ".venv", "var", "staticfiles", "test-artifacts"]


def parse_po(path: Path) -> list[dict]:
    """The entries of a .po file: msgctxt, msgid, msgid_plural, msgstr (a list), fuzzy."""
    entries: list[dict] = []
    entry: dict = {}
    field = None

    def close():
        nonlocal entry
        if "msgid" in entry:
            entries.append(entry)
        entry = {}

    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line:
            close()
            field = None
            continue
        if line.startswith("#,"):
            if "msgid" in entry:
                close()
            entry["fuzzy"] = "fuzzy" in line
            continue
        if line.startswith("#~"):  # an obsolete entry: not part of the catalogue
            continue
        if line.startswith("#"):
            continue
        if line.startswith('"'):
            text = ast.literal_eval(line)
        else:
            keyword, _, rest = line.partition(" ")
            if keyword in ("msgctxt", "msgid") and entry.get("msgstr"):
                close()
            text = ast.literal_eval(rest)
            if keyword.startswith("msgstr"):
                entry.setdefault("msgstr", [])
                entry["msgstr"].append("")
                field = ("msgstr", len(entry["msgstr"]) - 1)
            else:
                entry[keyword] = ""
                field = keyword
        if isinstance(field, tuple):
            entry["msgstr"][field[1]] += text
        elif field:
            entry[field] += text
    close()
    return entries


def key(entry: dict) -> tuple[str, str]:
    return entry.get("msgctxt", ""), entry["msgid"]


def needs_gettext():
    if not (shutil.which("xgettext") and shutil.which("msgfmt")):
        pytest.fail("the catalogue checks need the gettext tools: apt-get install gettext")


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> set[tuple[str, str]]:
    """Every translatable string of the project, extracted now as `make messages` does, into a
    temporary catalogue: makemessages runs in a directory of links to the project's folders (it
    writes next to the nearest `locale` folder, which would be the project's own)."""
    needs_gettext()
    work = tmp_path_factory.mktemp("extract")
    for child in ROOT.iterdir():
        if child.name not in {*IGNORE, "locale", ".git"} and not child.name.startswith("."):
            (work / child.name).symlink_to(child)
    (work / "locale").mkdir()
    cwd = os.getcwd()
    os.chdir(work)
    try:
        with override_settings(LOCALE_PATHS=[str(work / "locale")]):
            call_command(
                "makemessages", locale=["de"], ignore_patterns=IGNORE, no_location=True, symlinks=True, verbosity=0
            )
    finally:
        os.chdir(cwd)
    return {key(e) for e in parse_po(work / "locale" / "de" / "LC_MESSAGES" / "django.po") if e["msgid"]}


@pytest.mark.parametrize("lang", ["de", "en"])
def test_every_translatable_string_is_in_the_catalogue(extracted, lang):
    catalogue = {key(e) for e in parse_po(LOCALES / lang / "LC_MESSAGES" / "django.po")}
    missing = sorted(extracted - catalogue)
    assert len(extracted) > 300  # the extraction found the project's strings, not nothing
    assert not missing, f"{len(missing)} strings not in locale/{lang} (run `make messages`): {missing[:10]}"


def unfinished(path: Path) -> tuple[list[str], list[str]]:
    """The msgids of a catalogue left untranslated (an empty msgstr, or one plural form empty)
    and those marked fuzzy."""
    entries = [e for e in parse_po(path) if e["msgid"]]
    untranslated = [e["msgid"] for e in entries if not all(s.strip() for s in e.get("msgstr", [""]))]
    fuzzy = [e["msgid"] for e in entries if e.get("fuzzy")]
    return untranslated, fuzzy


def test_every_german_string_is_translated_and_none_is_fuzzy():
    untranslated, fuzzy = unfinished(LOCALES / "de" / "LC_MESSAGES" / "django.po")
    assert not untranslated, f"{len(untranslated)} German strings untranslated: {untranslated[:10]}"
    assert not fuzzy, f"{len(fuzzy)} German strings fuzzy (check them, then drop the flag): {fuzzy[:10]}"


def test_the_check_finds_an_empty_a_fuzzy_and_a_half_translated_plural(tmp_path):
    po = tmp_path / "django.po"
    po.write_text(
        """msgid ""
msgstr ""
"Content-Type: text/plain; charset=UTF-8\\n"

msgid "Wallet"
msgstr "Guthaben"

msgid "Receipt"
msgstr ""

#, fuzzy, python-format
msgid "Pay %(amount)s"
msgstr "Bezahlen"

msgid "%(count)s vehicle"
msgid_plural "%(count)s vehicles"
msgstr[0] "%(count)s Fahrzeug"
msgstr[1] ""

msgctxt "what the car is doing"
msgid ""
"Charging"
msgstr ""
"Laden"
""",
        encoding="utf-8",
    )
    entries = {key(e): e for e in parse_po(po)}
    assert entries[("what the car is doing", "Charging")]["msgstr"] == ["Laden"]
    untranslated, fuzzy = unfinished(po)
    assert untranslated == ["Receipt", "%(count)s vehicle"]
    assert fuzzy == ["Pay %(amount)s"]


@pytest.mark.parametrize("lang", ["de", "en"])
def test_the_compiled_catalogue_is_the_catalogue(lang):
    folder = LOCALES / lang / "LC_MESSAGES"
    with (folder / "django.mo").open("rb") as fh:
        compiled = gettext.GNUTranslations(fh)._catalog
    expected = {}
    for e in parse_po(folder / "django.po"):
        if e.get("fuzzy") or not e["msgid"]:
            continue
        msgid = f"{e['msgctxt']}\x04{e['msgid']}" if "msgctxt" in e else e["msgid"]
        strings = e.get("msgstr", [""])
        if "msgid_plural" in e:
            if all(strings):
                expected.update({(msgid, n): s for n, s in enumerate(strings)})
        elif strings[0]:
            expected[msgid] = strings[0]
    compiled = {k: v for k, v in compiled.items() if k != ""}
    assert compiled == expected, f"locale/{lang}: the .mo is not the .po compiled (run `make messages`)"
