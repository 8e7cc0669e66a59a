"""Every HTML page a test renders is checked: no id twice, and every id an attribute refers to
(aria-describedby, aria-labelledby, aria-controls, a label's `for`, an input's `list`) exists.

A middleware of the test settings parses each text/html response — of the test client and of the
live server the browser tests drive alike — and the autouse fixture fails the test that rendered
a page with a broken reference, naming the page and the id.
"""

from __future__ import annotations

import threading
from collections import Counter
from html.parser import HTMLParser

import pytest

# Attributes that hold one id, or a space-separated list of ids.
ID_LISTS = ("aria-describedby", "aria-labelledby", "aria-controls", "aria-owns", "aria-flowto")
ID_SINGLE = {"label": "for", "input": "list", "output": "for"}

_found: list[str] = []
_lock = threading.Lock()


class _Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: Counter[str] = Counter()
        self.refs: list[tuple[str, str, str]] = []  # (tag, attribute, id)

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        if values.get("id"):
            self.ids[values["id"]] += 1
        for name in ID_LISTS:
            for ref in (values.get(name) or "").split():
                self.refs.append((tag, name, ref))
        single = ID_SINGLE.get(tag)
        if single and values.get(single):
            self.refs.append((tag, single, values[single]))

    handle_startendtag = handle_starttag


def problems(html: str) -> list[str]:
    parser = _Ids()
    parser.feed(html)
    out = [f'id "{name}" appears {count} times' for name, count in parser.ids.items() if count > 1]
    out += [f'<{tag} {attr}="{ref}"> names no element' for tag, attr, ref in parser.refs if ref not in parser.ids]
    return out


class HtmlIdsMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.get("Content-Type", "").startswith("text/html")
            and not getattr(response, "streaming", False)
            and response.status_code != 204
        ):
            found = problems(response.content.decode(response.charset or "utf-8", "replace"))
            if found:
                with _lock:
                    _found.extend(f"{request.method} {request.get_full_path()}: {p}" for p in found)
        return response


@pytest.fixture(autouse=True)
def html_ids_checked():
    with _lock:
        _found.clear()
    yield
    with _lock:
        found, _found[:] = list(_found), []
    assert not found, "pages with duplicate or dangling ids:\n" + "\n".join(found)
