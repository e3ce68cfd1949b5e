"""Pages of runs over HTTP: the query fields turned into a store query, and the headers
that say how many runs match and where the next and previous pages are.

The body of ``GET /runs`` stays a plain list of runs (what clients before paging read);
the count and the links travel as ``X-Total-Count`` and ``Link`` (RFC 8288).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Request, Response
from pydantic import StringConstraints

from amlpkg.errors import InvalidArgumentError
from amlpkg.trainer.store.run_filter import MAX_TAG_FILTERS, parse_search, parse_sort, parse_tag
from amlpkg.trainer.store.run_search import RunQuery

TagFilter = Annotated[str, StringConstraints(min_length=3, max_length=500)]
SEARCH = (
    "Words (a substring of the run's name or id) and comparisons joined by spaces:"
    " metrics.KEY OP NUMBER (OP: = != < <= > >=, the final value), params.KEY = VALUE,"
    ' tags.KEY != VALUE; quote keys or values with spaces ("...").'
)
TAG = "KEY=VALUE: only runs with this tag value (repeat for more, all must match)."
SORT = "start_time, end_time, duration, name, status, metrics.KEY or params.KEY."
OFFSET = "Runs to skip (see the Link header for the next page)."
PAGE_HEADERS: dict[int | str, dict[str, Any]] = {
    200: {
        "headers": {
            "X-Total-Count": {
                "description": "runs matching the filters",
                "schema": {"type": "integer"},
            },
            "Link": {
                "description": 'rel="next" and rel="prev" pages',
                "schema": {"type": "string"},
            },
        }
    }
}


def run_query(  # noqa: PLR0917 - one argument per query field
    experiment: str | None,
    status: str | None,
    search: str | None,
    tags: list[str],
    sort: str,
    order: str,
    limit: int,
    offset: int,
) -> RunQuery:
    """The store query of the request's fields (a 400 names what is wrong)."""
    if len(tags) > MAX_TAG_FILTERS:
        raise InvalidArgumentError(
            f"{len(tags)} tag filters; at most {MAX_TAG_FILTERS}",
            hint="narrow with fewer tags, or use q=",
        )
    clauses = [*parse_search(search), *(parse_tag(t) for t in tags)]
    return RunQuery(experiment, status, clauses, parse_sort(sort, order), limit, offset)


def _link(request: Request, offset: int, rel: str) -> str:
    url = request.url.include_query_params(offset=offset)
    return f'<{url.path}?{url.query}>; rel="{rel}"'


def set_headers(response: Response, request: Request, total: int, limit: int, offset: int) -> None:
    """``X-Total-Count`` and the ``Link`` to the next and previous pages (when there are)."""
    response.headers["X-Total-Count"] = str(total)
    links = []
    if offset + limit < total:
        links.append(_link(request, offset + limit, "next"))
    if offset > 0:
        links.append(_link(request, max(0, offset - limit), "prev"))
    if links:
        response.headers["Link"] = ", ".join(links)
