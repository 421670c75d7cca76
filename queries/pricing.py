"""The duration discounts, stay rules and exchange rates in force, read from the pricing
policy (as quotes read them)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from midas.domain.pricing_policy import plain_stay_rules
from midas.http.api import Api
from midas.http.keys import REPOSITORY
from midas.policy import current_policy

api = Api(tag="pricing", kind="query")


class PricingRules(BaseModel):
    duration_discounts: dict[str, list[dict[str, Any]]]
    stay_rules: dict[str, Any]
    reporting_currency: str
    exchange_rates: dict[str, list[dict[str, str]]]
    policy_version: int


@api.get("/api/v1/pricing/rules", summary="The duration discounts by category and the stay"
         " rules in force", response=PricingRules)
async def get_rules(request: web.Request) -> web.Response:
    catalogue, version = await current_policy(request.app[REPOSITORY])
    discounts = {category.value: [{"min_nights": t.min_nights,
                                   "percentage": str(t.percentage)} for t in tiers]
                 for category, tiers in catalogue.duration_discounts.items()}
    return web.json_response({"duration_discounts": discounts,
                              "stay_rules": plain_stay_rules(catalogue.stay_rules),
                              "reporting_currency": catalogue.reporting_currency,
                              "exchange_rates": {
                                  currency: [{"valid_from": r.valid_from.isoformat(),
                                              "rate": str(r.rate),
                                              "reporting_currency": r.reporting_currency}
                                             for r in rates]
                                  for currency, rates in catalogue.exchange_rates.items()},
                              "policy_version": version})
