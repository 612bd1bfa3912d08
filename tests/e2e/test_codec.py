"""Temporal payloads are encrypted on the live stack (nexus/core/codec.py): what the server stores holds no
plaintext, our clients and workers read it transparently, and the codec server (api/routes/codec.py) opens it for
an admin only, by API key or, from the Temporal Web UI's origin, by session cookie."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import httpx
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from api.routes.codec import ui_origin
from nexus.chat.contracts import ChatTurnInput
from nexus.core.codec import ENCODING, decode_history
from nexus.core.embedded import temporal_cli, temporal_env
from nexus.core.settings import Settings
from nexus.runtime import Runtime
from tests.conftest import MakeAccount, chat_turn
from tests.harness import LiveServer
from tests.workflows.test_replay import replayer as plain_replayer
from workers.main import WORKFLOW_RUNNER
from workflows.chat import ChatTurnWorkflow


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


async def test_history_is_ciphertext_and_the_codec_server_opens_it_for_admins(
    api: httpx.AsyncClient,
    live_api: LiveServer,
    make_account: MakeAccount,
    runtime: Runtime,
    temporal_client: Client,
    settings: Settings,
) -> None:
    word = f"quokka{uuid.uuid4().hex[:8]}"
    admin, user = await make_account(admin=True), await make_account()
    events = await chat_turn(api, user.headers, message=f"What did the {word} keeper count?")
    assert events[-1][0] == "final", events[-1]
    workflow_id = events[0][1]["workflow_id"]
    await temporal_client.get_workflow_handle(workflow_id).result()

    # What the server stores, read by a client without the codec: no payload holds the question in the clear.
    live = runtime.settings
    plain = await Client.connect(
        live.temporal_target, namespace=live.temporal_namespace, data_converter=pydantic_data_converter
    )
    history = await plain.get_workflow_handle(workflow_id).fetch_history()
    assert not any(word.encode() in event.SerializeToString() for event in history.events)
    stored = history.events[0].workflow_execution_started_event_attributes.input
    assert all(p.metadata["encoding"] == ENCODING for p in stored.payloads)

    # Our client decodes it, and the workers' converter replays the encrypted history as it stands.
    (inp,) = await temporal_client.data_converter.decode(stored.payloads, [ChatTurnInput])
    assert word in inp.question
    opened = await decode_history(history, temporal_client.data_converter.payload_codec)
    assert word.encode() in opened.events[0].SerializeToString()
    replayer = Replayer(
        workflows=[ChatTurnWorkflow], data_converter=temporal_client.data_converter, workflow_runner=WORKFLOW_RUNNER
    )
    assert (await replayer.replay_workflow(history, raise_on_replay_failure=False)).replay_failure is None
    # Decoded, it is the history a plain converter replays (and the form to commit as a fixture).
    assert (await plain_replayer().replay_workflow(opened, raise_on_replay_failure=False)).replay_failure is None

    # The codec server: the UI's protocol (protobuf JSON), for an admin only.
    body = json_format.MessageToDict(stored)
    answer = await api.post("/codec/decode", json=body, headers=admin.headers)
    assert answer.status_code == 200, answer.text
    decoded = json_format.ParseDict(answer.json(), Payloads())
    assert decoded.payloads[0].metadata["encoding"] == b"json/plain" and word.encode() in decoded.payloads[0].data
    assert (await api.post("/codec/decode", json=body, headers=user.headers)).status_code == 403
    assert (await api.post("/codec/decode", json=body)).status_code == 401
    encoded = await api.post("/codec/encode", json=answer.json(), headers=admin.headers)
    assert encoded.status_code == 200 and word not in encoded.text
    reopened = await api.post("/codec/decode", json=encoded.json(), headers=admin.headers)
    assert reopened.json() == answer.json()
    gone = {"encoding": b64(ENCODING), "encryption-key-id": b64(b"kgone")}
    for bad, reason in (
        ({"payloads": [{"data": "not base64!"}]}, "JSON form"),
        ({"payloads": [{"metadata": gone, "data": b64(bytes(40))}]}, "kgone"),
    ):
        refused = await api.post("/codec/decode", json=bad, headers=admin.headers)
        assert refused.status_code == 400 and reason in refused.json()["detail"], refused.text

    # The Temporal CLI reads through it with an admin's key.
    show = await asyncio.create_subprocess_exec(
        *[temporal_cli(), "workflow", "show", "--workflow-id", workflow_id, "--output", "json"],
        *["--address", live.temporal_target, "--namespace", live.temporal_namespace],
        *["--codec-endpoint", f"{live_api.url}/codec", "--codec-auth", f"Bearer {admin.token}"],
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=temporal_env(),
    )
    out, err = await asyncio.wait_for(show.communicate(), 60)
    assert show.returncode == 0, err.decode()[-2000:]
    shown = json.loads(out)["events"][0]["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]
    assert word in base64.b64decode(shown["data"]).decode()

    # The embedded UI is pointed at it (at the API address of the settings the dev server was started with)...
    origin = ui_origin(live)
    async with httpx.AsyncClient(base_url=origin, timeout=10) as ui:
        codec_settings = (await ui.get("/api/v1/settings")).json()["Codec"]
    assert codec_settings["Endpoint"] == f"{settings.public_base_url}/codec", codec_settings

    # ...and calls it from its own origin with the session cookie and no CSRF token: allowed on /codec/* only.
    async with httpx.AsyncClient(base_url=live_api.url, timeout=30) as browser:
        assert (await browser.post("/auth/session", headers=admin.headers)).status_code == 200
        preflight = await browser.options(
            "/codec/decode",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type,x-namespace",
            },
        )
        assert preflight.status_code in (200, 204), preflight.text
        assert preflight.headers["access-control-allow-origin"] == origin
        assert preflight.headers["access-control-allow-credentials"] == "true"
        assert "x-namespace" in preflight.headers["access-control-allow-headers"]
        from_ui = {"Origin": origin, "X-Namespace": live.temporal_namespace}
        resp = await browser.post("/codec/decode", json=body, headers=from_ui)
        assert resp.status_code == 200 and resp.json() == answer.json(), resp.text
        assert resp.headers["access-control-allow-origin"] == origin
        assert resp.headers["access-control-allow-credentials"] == "true"

        evil = await browser.post("/codec/decode", json=body, headers={"Origin": "https://evil.example"})
        assert evil.status_code == 403 and "access-control-allow-origin" not in evil.headers
        text_plain = {**from_ui, "Content-Type": "text/plain"}  # what a cross-site form could send
        assert (await browser.post("/codec/decode", content=b"payloads", headers=text_plain)).status_code == 415
        # The UI's origin gains nothing elsewhere: no CORS grant, and the full CSRF rule.
        other = await browser.options("/api/media", headers={"Origin": origin, "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in other.headers
        assert (await browser.post("/auth/logout", headers=from_ui)).status_code == 403
