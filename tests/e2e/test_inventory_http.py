"""The inventory slice end to end: HTTP command -> event -> projection -> HTTP query."""

from __future__ import annotations

from typing import Any

PROBLEM = "application/problem+json"
VILLA = {"name": "Villa Amber", "category": "property", "location": "AE-DU", "rate": 1_500_000}


async def test_registered_item_is_seen_by_a_query_given_its_position(
    app_client: Any, auth: Any
) -> None:
    created = await app_client.post("/api/v1/items", json=VILLA, headers=auth("admin"))
    assert created.status == 201
    body = await created.json()
    assert int(created.headers["Midas-Position"]) == body["position"] >= 1

    found = await app_client.get(f"/api/v1/items/{body['id']}",
                                 params={"min_position": body["position"]})
    assert found.status == 200
    item = await found.json()
    assert item["name"] == "Villa Amber"
    # category defaults of a property: day rate, 24 h buffer, 2-day minimum
    assert (item["rate_unit"], item["buffer_minutes"], item["minimum_minutes"]) == (
        "day", 24 * 60, 2 * 24 * 60)
    assert item["currency"] == "USD" and item["status"] == "active"


async def test_rate_change_and_deactivation_reach_the_list(app_client: Any, auth: Any) -> None:
    admin = auth("admin")
    body = await (await app_client.post("/api/v1/items", json=VILLA, headers=admin)).json()
    yacht = {"name": "Sea Pearl", "category": "yacht", "location": "US-FL", "rate": 250_000}
    await app_client.post("/api/v1/items", json=yacht, headers=admin)
    changed = await app_client.put(f"/api/v1/items/{body['id']}/rate", json={"rate": 1_800_000},
                                   headers=admin)
    assert changed.status == 200
    off = await app_client.post(f"/api/v1/items/{body['id']}/deactivate", headers=admin)
    position = (await off.json())["position"]

    listed = await app_client.get("/api/v1/items", params={
        "min_position": position, "category": "property"})
    items = (await listed.json())["items"]
    assert [(i["rate"], i["status"]) for i in items] == [(1_800_000, "inactive")]
    active = await app_client.get("/api/v1/items", params={"status": "active"})
    assert [i["name"] for i in (await active.json())["items"]] == ["Sea Pearl"]

    again = await app_client.post(f"/api/v1/items/{body['id']}/deactivate", headers=admin)
    assert again.status == 409
    assert (await again.json())["state"] == "inactive"


async def test_malformed_json_is_400_problem(app_client: Any, auth: Any) -> None:
    response = await app_client.post(
        "/api/v1/items", data=b'{"name": ', headers={**auth(), "Content-Type": "application/json"}
    )
    assert response.status == 400
    assert response.content_type == PROBLEM
    assert (await response.json())["title"] == "Malformed JSON"


async def test_wrong_types_and_unknown_fields_are_422_naming_the_fields(
    app_client: Any, auth: Any
) -> None:
    bad = {**VILLA, "rate": "lots", "category": "submarine", "colour": "gold"}
    response = await app_client.post("/api/v1/items", json=bad, headers=auth())
    assert response.status == 422
    assert response.content_type == PROBLEM
    fields = {e["field"] for e in (await response.json())["errors"]}
    assert fields == {"body.rate", "body.category", "body.colour"}


async def test_bad_query_and_unknown_ids(app_client: Any) -> None:
    response = await app_client.get("/api/v1/items", params={"limit": "0", "colour": "x"})
    assert response.status == 422
    assert {e["field"] for e in (await response.json())["errors"]} == {"query.limit",
                                                                         "query.colour"}
    assert (await app_client.get("/api/v1/items/not-a-uuid")).status == 404
    missing = await app_client.get("/api/v1/items/00000000-0000-0000-0000-000000000000")
    assert missing.status == 404 and missing.content_type == PROBLEM


async def test_unknown_location_is_422(app_client: Any, auth: Any) -> None:
    response = await app_client.post("/api/v1/items", json={**VILLA, "location": "FR-PA"},
                                     headers=auth())
    assert response.status == 422
    assert (await response.json())["errors"][0]["field"] == "body.location"


async def test_writes_need_an_admin(app_client: Any, auth: Any) -> None:
    assert (await app_client.post("/api/v1/items", json=VILLA)).status == 401
    customer = await app_client.post("/api/v1/items", json=VILLA, headers=auth("customer"))
    assert customer.status == 403
    forged = {"Authorization": "Bearer not.a.token"}
    assert (await app_client.post("/api/v1/items", json=VILLA, headers=forged)).status == 401


async def test_a_position_not_reached_answers_503_with_retry_after(
    service: Any, auth: Any,
) -> None:
    client = await service(consistency_timeout_s=0.2, projections_enabled=False)
    created = await (await client.post("/api/v1/items", json=VILLA, headers=auth())).json()
    response = await client.get("/api/v1/items", params={"min_position": created["position"]})
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert response.content_type == PROBLEM
    # A position no command answered (beyond the log's head) can never be reached.
    beyond = await client.get("/api/v1/items",
                              params={"min_position": created["position"] + 1})
    assert beyond.status == 422 and beyond.content_type == PROBLEM
    assert (await beyond.json())["errors"][0]["field"] == "query.min_position"
