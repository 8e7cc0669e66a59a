import re

from web.dashboard.charts import bar_chart


def test_it_draws_bars_proportional_to_the_values():
    svg = bar_chart([("2026-03-01", 1000), ("2026-03-02", 4000), ("2026-03-03", 0)], title="Energy", scale=1000)
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([0-9.]+)"', svg)]
    assert heights[1] == 4 * heights[0] and heights[2] == 0
    assert ">4 <" in svg  # the top of the scale, in display units
    assert "03-01" in svg and "03-03" in svg


def test_it_escapes_labels_and_titles():
    svg = bar_chart([("<script>x</script>", 1)], title='"><script>')
    assert "<script>" not in svg


def test_it_draws_an_empty_series_without_dividing_by_zero():
    svg = bar_chart([], title="Nothing")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
