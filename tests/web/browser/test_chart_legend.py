"""The energy chart's legend fits the chart (issue 19 §3): measured in Chromium with the page's own
stylesheet, at the legend's font size, every label lies inside the chart's width and none runs
into the next, in English and in German (whose labels are longer)."""

import itertools
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import translation

from sessions import services as session_services
from tests.plugins.api_world import make_vehicle
from tests.plugins.wallet import paid_credit
from web.pages import live

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MEASURE = """() => {
  const svg = document.getElementById("energy-chart");
  const box = svg.viewBox.baseVal;
  const texts = [...svg.querySelectorAll(".legend text")];
  return {
    width: box.width,
    height: box.height,
    labels: texts.map((t) => {
      const b = t.getBBox();
      return {text: t.textContent, x: b.x, y: b.y, right: b.x + b.width, bottom: b.y + b.height,
              size: getComputedStyle(t).fontSize};
    }),
  };
}"""


@pytest.mark.parametrize("language", ["en", "de"])
@pytest.mark.parametrize("viewport", [(390, 844), (1100, 900)], ids=["phone", "desktop"])
def test_the_legend_fits_the_chart_at_its_font_size(chromium, driver, language, viewport):
    paid_credit(driver, energy_wh=10_000, amount_minor=450)
    vehicle = make_vehicle(driver)
    session = session_services.session_request(user=driver, vehicle_id=vehicle.pk, energy_wh=5_000)
    with translation.override(language):
        svg = str(live.energy_chart(session, live.live_estimate(session)))
    css = (Path(settings.BASE_DIR) / "static" / "css" / "app.css").read_text()
    context = chromium.new_context(viewport={"width": viewport[0], "height": viewport[1]})
    try:
        page = context.new_page()
        page.set_content(
            f'<!doctype html><html lang="{language}"><head><style>{css}</style></head>'
            f'<body><main><figure class="chart-box">{svg}</figure></main></body></html>'
        )
        chart = page.evaluate(MEASURE)
    finally:
        context.close()
    labels = chart["labels"]
    assert len(labels) == 3
    for label in labels:
        assert label["size"] == f"{live.LEGEND_FONT}px"
        assert label["x"] >= 0 and label["right"] <= chart["width"], (label, chart["width"])
        assert label["bottom"] <= chart["height"], (label, chart["height"])
    # Side by side, a label ends before the next entry's mark (16 units left of its text) begins.
    for first, second in itertools.pairwise(labels):
        if abs(first["y"] - second["y"]) < 1:
            assert first["right"] <= second["x"] - 16, (first, second)
