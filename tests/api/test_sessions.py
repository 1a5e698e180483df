"""Sessions over HTTP: the lifecycle, the QR in every format, pairing codes."""

from __future__ import annotations

import io

from PIL import Image

from whatsgate.testing import settle

from .conftest import Api, new_session


async def test_create_list_get_rename_and_delete(api: Api) -> None:
    created = await new_session(api, name="  sales ")
    assert (created["name"], created["status"], created["qr"]) == ("sales", "stopped", None)
    sid = created["id"]

    listed = (await api.call("GET", "/api/v1/sessions")).json()
    assert [s["id"] for s in listed["items"]] == [sid] and listed["next_cursor"] is None

    got = await api.call("GET", f"/api/v1/sessions/{sid}")
    assert got.status_code == 200 and got.json()["owner_id"] == created["owner_id"]

    renamed = await api.call("PATCH", f"/api/v1/sessions/{sid}", json={"name": "support"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "support"

    deleted = await api.call("DELETE", f"/api/v1/sessions/{sid}")
    assert deleted.status_code == 204 and deleted.content == b""
    gone = await api.call("GET", f"/api/v1/sessions/{sid}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "session_not_found"
    assert api.store.sessions == {}


async def test_a_duplicate_name_is_409(api: Api) -> None:
    await new_session(api, name="sales")
    again = await api.call("POST", "/api/v1/sessions", json={"name": "sales"})
    assert again.status_code == 409
    assert again.json()["error"] == {
        "code": "already_exists",
        "message": "A session named 'sales' already exists.",
        "details": {"field": "name"},
    }
    other = await new_session(api, name="other")
    clash = await api.call("PATCH", f"/api/v1/sessions/{other['id']}", json={"name": "sales"})
    assert clash.status_code == 409


async def test_list_is_paginated_with_a_validated_limit(api: Api) -> None:
    ids = [(await new_session(api, name=f"s{i}"))["id"] for i in range(5)]
    first = (await api.call("GET", "/api/v1/sessions", params={"limit": 2})).json()
    second = (
        await api.call(
            "GET", "/api/v1/sessions", params={"limit": 2, "cursor": first["next_cursor"]}
        )
    ).json()
    third = (
        await api.call(
            "GET", "/api/v1/sessions", params={"limit": 2, "cursor": second["next_cursor"]}
        )
    ).json()
    pages = [first, second, third]
    assert [s["id"] for page in pages for s in page["items"]] == ids
    assert third["next_cursor"] is None
    for bad in ({"limit": 0}, {"limit": 501}, {"limit": "many"}):
        r = await api.call("GET", "/api/v1/sessions", params=bad)
        assert r.status_code == 422, bad
        assert r.json()["error"]["code"] == "invalid_input"
        assert r.json()["error"]["details"]["fields"][0]["field"] == "limit"
    broken = await api.call("GET", "/api/v1/sessions", params={"cursor": "!!"})
    assert broken.status_code == 422 and broken.json()["error"]["code"] == "invalid_cursor"


async def test_start_scan_stop_and_logout(api: Api) -> None:
    sid = (await new_session(api))["id"]
    started = await api.call("POST", f"/api/v1/sessions/{sid}/start")
    assert started.status_code == 202 and started.json()["status"] in ("starting", "awaiting_scan")
    await settle()
    assert (await api.call("GET", f"/api/v1/sessions/{sid}")).json()["status"] == "awaiting_scan"

    await api.engine.scan(sid, phone="5566996285154")
    connected = (await api.call("GET", f"/api/v1/sessions/{sid}")).json()
    assert connected["status"] == "connected"
    assert connected["jid"] == "5566996285154@s.whatsapp.net"

    stopped = await api.call("POST", f"/api/v1/sessions/{sid}/stop")
    assert stopped.status_code == 202
    assert (stopped.json()["status"], stopped.json()["jid"]) == (
        "stopped",
        "5566996285154@s.whatsapp.net",
    )

    logged_out = await api.call("POST", f"/api/v1/sessions/{sid}/logout")
    assert logged_out.status_code == 202
    assert (logged_out.json()["status"], logged_out.json()["jid"]) == ("logged_out", None)
    assert sid not in api.engine.credentials


async def test_create_with_start_starts_it(api: Api) -> None:
    r = await api.call("POST", "/api/v1/sessions", json={"name": "sales", "start": True})
    assert r.status_code == 201
    assert r.json()["desired_running"] is True
    assert api.engine.opens_of(r.json()["id"])


async def test_qr_starts_a_stopped_session_and_answers_json(api: Api) -> None:
    sid = (await new_session(api))["id"]
    r = await api.call("GET", f"/api/v1/sessions/{sid}/qr")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "awaiting_scan" and body["qr"].startswith("2@fake-qr-")
    assert body["expires_at"].endswith("Z")
    stored = (await api.call("GET", f"/api/v1/sessions/{sid}")).json()
    assert stored["qr"] == body["qr"]


async def test_qr_as_png_and_svg(api: Api) -> None:
    sid = (await new_session(api))["id"]
    png = await api.call("GET", f"/api/v1/sessions/{sid}/qr", params={"format": "png"})
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(png.content))
    assert image.format == "PNG" and image.size[0] == image.size[1] > 100

    by_accept = await api.call("GET", f"/api/v1/sessions/{sid}/qr", headers={"Accept": "image/png"})
    assert by_accept.headers["content-type"] == "image/png"
    assert by_accept.content == png.content

    svg = await api.call("GET", f"/api/v1/sessions/{sid}/qr", params={"format": "svg"})
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<svg") and "<path" in svg.text

    bad = await api.call("GET", f"/api/v1/sessions/{sid}/qr", params={"format": "gif"})
    assert bad.status_code == 422


async def test_qr_of_a_paired_session_is_409_already_connected(api: Api) -> None:
    sid = (await new_session(api))["id"]
    await api.call("GET", f"/api/v1/sessions/{sid}/qr")
    await api.engine.scan(sid)
    r = await api.call("GET", f"/api/v1/sessions/{sid}/qr")
    assert r.status_code == 409 and r.json()["error"]["code"] == "already_connected"
    await api.call("POST", f"/api/v1/sessions/{sid}/stop")
    again = await api.call("GET", f"/api/v1/sessions/{sid}/qr", params={"format": "png"})
    assert again.status_code == 409


async def test_qr_image_without_a_qr_yet_is_409_qr_not_ready(api: Api) -> None:
    api.engine.network_down = True  # the engine cannot reach WhatsApp: no QR comes
    sid = (await new_session(api))["id"]
    as_json = await api.call("GET", f"/api/v1/sessions/{sid}/qr")
    assert as_json.status_code == 200
    assert as_json.json()["qr"] is None and as_json.json()["status"] == "reconnecting"
    image = await api.call("GET", f"/api/v1/sessions/{sid}/qr", params={"format": "png"})
    assert image.status_code == 409 and image.json()["error"]["code"] == "qr_not_ready"


async def test_my_qr_creates_the_callers_own_session_once(api: Api) -> None:
    first = await api.call("GET", "/api/v1/whatsapp/qr")
    assert first.status_code == 200 and first.json()["qr"].startswith("2@")
    second = await api.call("GET", "/api/v1/whatsapp/qr")
    assert second.json()["session_id"] == first.json()["session_id"]
    sessions = (await api.call("GET", "/api/v1/sessions")).json()["items"]
    assert [s["id"] for s in sessions] == [first.json()["session_id"]]
    assert sessions[0]["name"] == "admin"


async def test_pairing_code(api: Api) -> None:
    sid = (await new_session(api))["id"]
    r = await api.call(
        "POST", f"/api/v1/sessions/{sid}/pairing-code", json={"phone": "+55 66 99628-5154"}
    )
    assert r.status_code == 200 and r.json()["code"] == "FAKE-CODE"
    assert api.engine.pairing_requests == [(sid, "5566996285154")]
    bad = await api.call("POST", f"/api/v1/sessions/{sid}/pairing-code", json={"phone": "abc"})
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_phone_number"
