from django.conf import settings
from rest_framework.pagination import PageNumberPagination


class Pagination(PageNumberPagination):
    """?page=N&page_size=M, at most 100 items a page."""

    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request) -> int:
        # Read per request: the default comes from settings (API_PAGE_SIZE).
        self.page_size = settings.API_PAGE_SIZE
        return super().get_page_size(request)
