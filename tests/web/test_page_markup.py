"""The markup every page shares: an icon, and ids that are unique and that every reference to them
finds (tests/plugins/html_ids.py checks each page any test renders; here, that it can fail)."""

import pytest

from tests.plugins.html_ids import problems


def test_the_id_check_finds_a_duplicate_and_a_dangling_reference():
    html = """<form><label for="a">A</label><input id="a" aria-describedby="a-help missing">
      <small id="a-help">help</small><p id="dup"></p><p id="dup"></p><label for="nowhere">B</label></form>"""
    assert problems(html) == [
        'id "dup" appears 2 times',
        '<input aria-describedby="missing"> names no element',
        '<label for="nowhere"> names no element',
    ]
    assert problems('<input id="x" aria-describedby="x-help"><span id="x-help"></span>') == []


@pytest.mark.django_db
def test_every_page_names_the_icon_and_favicon_ico_finds_it(client, operator):
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in client.get("/").content.decode()
    icon = client.get("/favicon.ico")
    assert (icon.status_code, icon["Location"]) == (302, "/static/favicon.svg")
    client.force_login(operator)
    assert 'rel="icon" href="/static/favicon.svg"' in client.get("/admin/").content.decode()


def test_the_icon_is_an_svg_picture():
    from pathlib import Path

    svg = (Path(__file__).resolve().parents[2] / "static" / "favicon.svg").read_text()
    assert svg.startswith("<svg xmlns=") and "<path" in svg
