"""A small PDF writer: one A4 page of text lines and rules, in the standard Helvetica fonts.

Enough for an invoice, without a dependency: PDF 1.4 with the 14 standard fonts needs no
embedded font, and WinAnsiEncoding (cp1252) covers German and the euro sign. Text that cp1252
cannot hold is replaced by "?" rather than failing the download.
"""

from __future__ import annotations

from dataclasses import dataclass, field

A4 = (595, 842)  # points


def _escape(text: str) -> bytes:
    raw = text.encode("cp1252", errors="replace")
    return raw.replace(b"\\", b"\\\\").replace(b"(", b"\\(").replace(b")", b"\\)")


@dataclass
class Page:
    """Text and lines on one page; y grows downwards from the top margin, as one reads."""

    margin: int = 56
    y: float = 0.0
    ops: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.y = self.margin

    def text(self, value: str, *, size: float = 10, bold: bool = False, x: float | None = None, right: bool = False):
        """Write `value` at the current line; `right=True` aligns its end at `x` (approximately:
        Helvetica's average width, good enough for figures in a column)."""
        font = b"F2" if bold else b"F1"
        left = self.margin if x is None else x
        if right:
            left -= _width(value, size)
        top = A4[1] - self.y - size
        self.ops.append(b"BT /%s %.1f Tf %.1f %.1f Td (%s) Tj ET" % (font, size, left, top, _escape(value)))

    def line_break(self, size: float = 10, factor: float = 1.45) -> None:
        self.y += size * factor

    def rule(self) -> None:
        y = A4[1] - self.y - 4
        self.ops.append(b"0.6 w %d %.1f m %d %.1f l S" % (self.margin, y, A4[0] - self.margin, y))
        self.y += 10

    def render(self) -> bytes:
        return render_pdf(b"\n".join(self.ops))


# Average Helvetica advance widths (per 1000 em) for right alignment of short strings.
_NARROW = set("il.,:;'|!ijft ()[]")
_WIDE = set("mwMW@%")


def _width(text: str, size: float) -> float:
    units = sum(278 if c in _NARROW else 833 if c in _WIDE else 556 for c in text)
    return units * size / 1000


def render_pdf(content: bytes) -> bytes:
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 %d %d] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R /F2 6 0 R >> >> >>" % A4,
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(content), content),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica-Bold /Encoding /WinAnsiEncoding >>",
    ]
    out = bytearray(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    for offset in offsets:
        out += b"%010d 00000 n \n" % offset
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)
