from django.conf import settings
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    """?page=N&page_size=M, at most 100 items a page (a larger M gives 100; anything but a whole
    number from 1 is a 400)."""

    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request) -> int:
        # Read per request: the default comes from settings (API_PAGE_SIZE).
        self.page_size = settings.API_PAGE_SIZE
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        # DRF falls back to the default for anything it cannot read ("null", "0", "abc"): a
        # client that asked for something else should hear it was not understood.
        if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
            raise ValidationError({self.page_size_query_param: [f"A whole number from 1 to {self.max_page_size}."]})
        return min(int(raw), self.max_page_size)
