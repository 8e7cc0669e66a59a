"""Server-side charts: small inline SVG, no JavaScript library and no external asset."""

from __future__ import annotations

from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe


def bar_chart(
    series: list[tuple[str, int | float]],
    *,
    title: str,
    unit: str = "",
    scale: float = 1.0,
    width: int = 640,
    height: int = 160,
) -> SafeString:
    """A bar per (label, value); values are divided by `scale` for display (e.g. Wh → kWh: 1000)."""
    pad_left, pad_bottom, pad_top = 48, 22, 20
    plot_w, plot_h = width - pad_left - 4, height - pad_bottom - pad_top
    values = [value / scale for _, value in series]
    top = max(values, default=0) or 1
    bar_w = plot_w / max(1, len(series))
    parts = [
        format_html(
            '<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" viewBox="0 0 {} {}" '
            'width="100%" aria-label="{}"><title>{}</title>',
            width,
            height,
            title,
            title,
        ),
        format_html('<text x="2" y="13" font-size="13">{} {}</text>', _fmt(top), unit),
        format_html(
            '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999"/>',
            pad_left,
            pad_top + plot_h,
            width - 4,
            pad_top + plot_h,
        ),
    ]
    for index, ((label, _), value) in enumerate(zip(series, values, strict=True)):
        bar_h = plot_h * value / top
        x = pad_left + index * bar_w
        parts.append(
            format_html(
                '<rect x="{}" y="{}" width="{}" height="{}" fill="#2b7a4b"><title>{}: {} {}</title></rect>',
                f"{x + 1:.1f}",
                f"{pad_top + plot_h - bar_h:.1f}",
                f"{max(1.0, bar_w - 2):.1f}",
                f"{bar_h:.1f}",
                label,
                _fmt(value),
                unit,
            )
        )
    if series:
        # First and last day under the axis; the last one right-aligned so it is not clipped.
        for x, anchor, label in ((pad_left, "start", series[0][0]), (width - 4, "end", series[-1][0])):
            parts.append(
                format_html(
                    '<text x="{}" y="{}" font-size="13" text-anchor="{}">{}</text>', x, height - 3, anchor, label[5:]
                )
            )
    parts.append(mark_safe("</svg>"))
    return mark_safe("".join(str(p) for p in parts))  # noqa: S308 - every part was escaped above


def _fmt(value: float) -> str:
    return escape(f"{value:,.1f}" if value % 1 else f"{value:,.0f}")
