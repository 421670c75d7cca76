"""The extras on offer, read from the extras catalogue itself (a few dozen, held by one
aggregate the repository caches), as quotes read them."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field

from midas.domain.catalogue import Category
from midas.http.api import Api
from midas.http.keys import REPOSITORY
from midas.policy import current_extras

api = Api(tag="extras", kind="query")


class ExtraFilter(BaseModel):
    category: Category | None = None
    location: str | None = Field(None, pattern=r"^[A-Z]{2}-[A-Z]{2}$")


class ExtraList(BaseModel):
    extras: list[dict[str, Any]]
    version: int


@api.get("/api/v1/extras", summary="The extras on offer (for a category and location)",
         query=ExtraFilter, response=ExtraList)
async def list_extras(request: web.Request, query: ExtraFilter) -> web.Response:
    catalogue = await current_extras(request.app[REPOSITORY])
    extras = [e for code, e in sorted(catalogue.extras.items())
              if (query.category is None or query.category.value in e["categories"])
              and (query.location is None or e["locations"] is None
                   or query.location in e["locations"])]
    return web.json_response({"extras": extras, "version": catalogue.version})
