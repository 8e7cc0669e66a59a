"""English dates as the pages always wrote them (ISO order, 24-hour clock); the names not set here
are Django's own for English (settings.FORMAT_MODULE_PATH)."""

SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i"
DATETIME_FORMAT = "Y-m-d H:i"
TIME_FORMAT = "H:i"
DECIMAL_SEPARATOR = "."
THOUSAND_SEPARATOR = ","
