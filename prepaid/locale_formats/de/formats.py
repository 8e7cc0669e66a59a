"""German dates and numbers as a German app writes them: "06.12.2026 17:10", "1,5 kWh"; the names
not set here are Django's own for German (settings.FORMAT_MODULE_PATH)."""

SHORT_DATE_FORMAT = "d.m.Y"
SHORT_DATETIME_FORMAT = "d.m.Y H:i"
DATETIME_FORMAT = "d.m.Y H:i"
TIME_FORMAT = "H:i"
DECIMAL_SEPARATOR = ","
THOUSAND_SEPARATOR = "."
