"""Pagination shared by every list endpoint: `?limit=&offset=` with a hard cap."""

from django.conf import settings
from rest_framework.pagination import LimitOffsetPagination


class CappedLimitOffsetPagination(LimitOffsetPagination):
    """Limit/offset pagination whose `limit` can never exceed `API_PAGE_SIZE_MAX`."""

    default_limit = 50

    @property
    def max_limit(self) -> int:  # type: ignore[override]
        return settings.API_PAGE_SIZE_MAX
