"""slack_sdk and slack_bolt, unmodified except for the Web API base URL, against
`robit emulate slack`: the Web API, all three Socket Mode clients, and a bolt app over Socket
Mode and over the HTTP Events API (mentions, slash commands, button clicks, modals)."""

import asyncio
import socket
import threading
import time

import pytest
from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler
from slack_bolt.app.app import SlackAppDevelopmentServer
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.request import SocketModeRequest
from slack_sdk.socket_mode.response import SocketModeResponse

from conftest import wait_until

GENERAL = "C0GENERAL"
ALICE = "U0ALICE"
BOT = "U0ROBIT"


def web(emu):
    return WebClient(token=emu.env["SLACK_BOT_TOKEN"], base_url=emu.env["SLACK_API_URL"])


def messages(emu, channel=GENERAL, thread_ts=None):
    q = f"/_control/messages?channel={channel}"
    if thread_ts:
        q += f"&thread_ts={thread_ts}"
    return emu.get(q)["messages"]


def button_blocks(action_id="approve"):
    return [
        {"type": "section", "block_id": "q", "text": {"type": "mrkdwn", "text": "Deploy?"}},
        {"type": "actions", "block_id": "choices", "elements": [
            {"type": "button", "action_id": action_id, "value": "yes", "style": "primary",
             "text": {"type": "plain_text", "text": "Approve"}}]},
    ]


# ----- the Web API through slack_sdk -----


def test_web_api_posts_updates_reads_and_errors(slack_emu):
    c = web(slack_emu)
    me = c.auth_test()
    assert me["user_id"] == BOT and me["team_id"] == "T0EMULATOR"
    root = c.chat_postMessage(channel=GENERAL, text="root", blocks=button_blocks())
    assert root["message"]["blocks"][1]["elements"][0]["action_id"] == "approve"
    reply = c.chat_postMessage(channel=GENERAL, text="in thread", thread_ts=root["ts"])
    c.chat_update(channel=GENERAL, ts=reply["ts"], text="edited")
    replies = c.conversations_replies(channel=GENERAL, ts=root["ts"])["messages"]
    assert [m["text"] for m in replies] == ["root", "edited"]
    c.chat_postEphemeral(channel=GENERAL, user=ALICE, text="just you")
    c.chat_delete(channel=GENERAL, ts=reply["ts"])
    assert [m["text"] for m in c.conversations_replies(channel=GENERAL, ts=root["ts"])["messages"]] == ["root"]
    with pytest.raises(SlackApiError) as e:
        c.chat_postMessage(channel="C0NOPE", text="x")
    assert e.value.response["error"] == "channel_not_found"
    bad = WebClient(token="xoxb-wrong", base_url=slack_emu.env["SLACK_API_URL"])
    with pytest.raises(SlackApiError) as e:
        bad.auth_test()
    assert e.value.response["error"] == "invalid_auth"


def test_rate_limited_calls_are_retried_by_slack_sdk(slack_emu):
    from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

    c = web(slack_emu)
    c.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=2))
    slack_emu.post("/_control/fault", {"rate_limit": {"method": "chat.postMessage", "count": 1,
                                                      "retry_after": 1}})
    assert c.chat_postMessage(channel=GENERAL, text="eventually")["ok"]
    statuses = [x["status"] for x in slack_emu.get("/_control/calls")["calls"]
                if x["method"] == "chat.postMessage"]
    assert statuses == [429, 200]


def test_files_upload_v2(slack_emu):
    c = web(slack_emu)
    root = c.chat_postMessage(channel=GENERAL, text="files here")
    r = c.files_upload_v2(channel=GENERAL, thread_ts=root["ts"], content="a,b\n1,2\n",
                          filename="data.csv", title="data")
    assert r["file"]["id"]


def test_reactions_users_and_conversations(slack_emu):
    c = web(slack_emu)
    m = c.chat_postMessage(channel=GENERAL, text="react")
    c.reactions_add(channel=GENERAL, timestamp=m["ts"], name="thumbsup")
    with pytest.raises(SlackApiError) as e:
        c.reactions_add(channel=GENERAL, timestamp=m["ts"], name="thumbsup")
    assert e.value.response["error"] == "already_reacted"
    got = c.reactions_get(channel=GENERAL, timestamp=m["ts"])
    assert got["message"]["reactions"] == [{"name": "thumbsup", "users": [BOT], "count": 1}]
    c.reactions_remove(channel=GENERAL, timestamp=m["ts"], name="thumbsup")
    with pytest.raises(SlackApiError) as e:
        c.reactions_remove(channel=GENERAL, timestamp=m["ts"], name="thumbsup")
    assert e.value.response["error"] == "no_reaction"

    alice = c.users_info(user=ALICE)["user"]
    assert alice["name"] == "alice" and not alice["is_bot"] and alice["profile"]["display_name"]
    assert c.users_info(user=BOT)["user"]["is_bot"]
    with pytest.raises(SlackApiError) as e:
        c.users_info(user="U0NOBODY")
    assert e.value.response["error"] == "user_not_found"
    assert c.conversations_info(channel=GENERAL)["channel"]["is_member"]

    for i in range(5):
        c.chat_postMessage(channel=GENERAL, text=f"h{i}")
    page1 = c.conversations_history(channel=GENERAL, limit=3)
    assert [x["text"] for x in page1["messages"]] == ["h4", "h3", "h2"]
    assert page1["has_more"]
    page2 = c.conversations_history(channel=GENERAL, limit=3,
                                    cursor=page1["response_metadata"]["next_cursor"])
    assert [x["text"] for x in page2["messages"]] == ["h1", "h0", "react"]


def test_schedule_message(slack_emu):
    c = web(slack_emu)
    with pytest.raises(SlackApiError) as e:
        c.chat_scheduleMessage(channel=GENERAL, post_at=int(time.time()) - 10, text="late")
    assert e.value.response["error"] == "time_in_past"
    gone = c.chat_scheduleMessage(channel=GENERAL, post_at=int(time.time()) + 60, text="never")
    c.chat_deleteScheduledMessage(channel=GENERAL, scheduled_message_id=gone["scheduled_message_id"])
    # Two seconds, not one: int() truncates, so "+ 1" can already be the emulator's current
    # second when the request lands (a time_in_past flake CI hit).
    r = c.chat_scheduleMessage(channel=GENERAL, post_at=int(time.time()) + 2, text="later")
    listed = c.chat_scheduledMessages_list(channel=GENERAL)["scheduled_messages"]
    assert [x["id"] for x in listed] == [r["scheduled_message_id"]]
    wait_until(lambda: any(m["text"] == "later" for m in messages(slack_emu)), timeout=6,
               what="the scheduled message")
    assert not any(m["text"] == "never" for m in messages(slack_emu))


def test_views_publish_and_trigger_checks(slack_emu):
    c = web(slack_emu)
    home = {"type": "home", "blocks": [{"type": "section",
                                         "text": {"type": "mrkdwn", "text": "Welcome"}}]}
    v = c.views_publish(user_id=ALICE, view=home)["view"]
    assert v["type"] == "home" and v["id"].startswith("V")
    assert slack_emu.get("/_control/views")["home_tabs"][ALICE]["blocks"][0]["text"]["text"] == "Welcome"
    with pytest.raises(SlackApiError) as e:
        c.views_open(trigger_id="made.up", view={"type": "modal",
                                                 "title": {"type": "plain_text", "text": "x"},
                                                 "blocks": []})
    assert e.value.response["error"] == "invalid_trigger_id"


# ----- Socket Mode clients of slack_sdk -----


def _socket_client(kind, emu):
    if kind == "builtin":
        from slack_sdk.socket_mode.builtin import SocketModeClient
        return SocketModeClient(app_token=emu.env["SLACK_APP_TOKEN"], web_client=web(emu))
    if kind == "aiohttp":
        from slack_sdk.socket_mode.aiohttp import SocketModeClient
        from slack_sdk.web.async_client import AsyncWebClient
    else:
        from slack_sdk.socket_mode.websockets import SocketModeClient
        from slack_sdk.web.async_client import AsyncWebClient
    return SocketModeClient(app_token=emu.env["SLACK_APP_TOKEN"],
                            web_client=AsyncWebClient(token=emu.env["SLACK_BOT_TOKEN"],
                                                      base_url=emu.env["SLACK_API_URL"]))


@pytest.mark.parametrize("kind", ["builtin", "aiohttp", "websockets"])
def test_socket_mode_clients_receive_and_ack(slack_emu, kind):
    got = []
    if kind == "builtin":
        client = _socket_client(kind, slack_emu)

        def listener(c, req: SocketModeRequest):
            c.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            got.append(req.type)

        client.socket_mode_request_listeners.append(listener)
        client.connect()
        try:
            d = slack_emu.post("/_control/mention", {"text": "hello socket"})
            wait_until(lambda: d["event_id"] in slack_emu.get("/_control/calls")["acked"],
                       what="the ack")
        finally:
            client.close()
        assert "events_api" in got
        return

    async def main():
        client = _socket_client(kind, slack_emu)

        async def listener(c, req: SocketModeRequest):
            await c.send_socket_mode_response(SocketModeResponse(envelope_id=req.envelope_id))
            got.append(req.type)

        client.socket_mode_request_listeners.append(listener)
        await client.connect()
        try:
            d = slack_emu.post("/_control/mention", {"text": "hello socket"})
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while d["event_id"] not in slack_emu.get("/_control/calls")["acked"]:
                assert loop.time() < deadline, "timed out waiting for the ack"
                await asyncio.sleep(0.05)
        finally:
            await client.close()

    asyncio.run(main())
    assert "events_api" in got


# ----- a slack_bolt app -----


def bolt_app(emu, seen):
    app = App(client=web(emu), signing_secret=emu.env["SLACK_SIGNING_SECRET"])

    @app.event("app_mention")
    def on_mention(event, say):
        if "deploy" in event["text"]:
            say(text="Deploy?", blocks=button_blocks(), thread_ts=event["ts"])
        else:
            say(text=f"echo: {event['text']}", thread_ts=event["ts"])

    @app.event("message")
    def on_message(event):
        seen.setdefault("messages", []).append(event)

    @app.command("/ask")
    def on_ask(ack, respond, command):
        ack(text="thinking...")
        respond(text=f"answer to {command['text']}", response_type="in_channel")

    @app.action("approve")
    def on_approve(ack, body, client, respond):
        ack()
        client.views_open(trigger_id=body["trigger_id"], view={
            "type": "modal", "callback_id": "why",
            "title": {"type": "plain_text", "text": "Approve"},
            "submit": {"type": "plain_text", "text": "Send"},
            "blocks": [{"type": "input", "block_id": "r", "label": {"type": "plain_text", "text": "Why?"},
                        "element": {"type": "plain_text_input", "action_id": "reason"}}],
        })
        respond(replace_original=True, text=f"approved by <@{body['user']['id']}>")
        seen["approved"] = body["actions"][0]["value"]

    return app


def exercise_bolt_app(emu, seen):
    """The flows a bolt app runs, whichever transport delivers them."""
    d = emu.post("/_control/mention", {"text": "hi there"})
    text = wait_until(lambda: [m["text"] for m in messages(emu, thread_ts=d["ts"])
                               if m["bot_id"]], what="the bot's reply")
    assert text == [f"echo: <@{BOT}> hi there"]

    # The user edits the mention: a `message` event with subtype `message_changed`.
    emu.post("/_control/edit", {"ts": d["ts"], "text": f"<@{BOT}> hi there, edited"})
    changed = wait_until(lambda: [e for e in seen.get("messages", [])
                                  if e.get("subtype") == "message_changed"],
                         what="the message_changed event")[0]
    assert changed["message"]["ts"] == d["ts"]
    assert changed["message"]["text"] == f"<@{BOT}> hi there, edited"
    assert changed["previous_message"]["text"] == f"<@{BOT}> hi there"
    assert changed["message"]["edited"]["user"] == changed["message"]["user"]
    stored = emu.get(f"/_control/message?channel={GENERAL}&ts={d['ts']}")["message"]
    assert stored["text"] == f"<@{BOT}> hi there, edited"

    cmd = emu.post("/_control/slash", {"command": "/ask", "text": "why"})
    # The ack and the response_url post race each other, as they do on Slack.
    wait_until(lambda: {"ack", "response_url"} <= {
        r["via"] for r in emu.get("/_control/calls")["command_responses"]},
        what="the slash command's ack text and response")
    responses = emu.get("/_control/calls")["command_responses"]
    assert [r["body"]["text"] for r in responses if r["via"] == "ack"] == ["thinking..."]
    assert any(m["text"] == "answer to why" for m in messages(emu))
    assert cmd["event_id"] in emu.get("/_control/calls")["acked"]

    d = emu.post("/_control/mention", {"text": "deploy please"})
    bot_msg = wait_until(lambda: [m for m in messages(emu, thread_ts=d["ts"]) if m["bot_id"]],
                         what="the message with a button")[0]
    click = emu.post("/_control/button", {"ts": bot_msg["ts"], "action_id": "approve"})
    assert click["event_id"].startswith("action:")
    wait_until(lambda: seen.get("approved"), what="the action handler")
    assert seen["approved"] == "yes"
    views = wait_until(lambda: emu.get("/_control/views")["views"], what="the modal")
    assert views[0]["callback_id"] == "why" and views[0]["title"]["text"] == "Approve"
    replaced = wait_until(
        lambda: emu.get(f"/_control/message?channel={GENERAL}&ts={bot_msg['ts']}")["message"]["text"]
        .startswith("approved"), what="the replaced message")
    assert replaced


def test_bolt_app_over_socket_mode(slack_emu):
    seen = {}
    app = bolt_app(slack_emu, seen)
    handler = SocketModeHandler(app, slack_emu.env["SLACK_APP_TOKEN"])
    handler.connect()
    try:
        exercise_bolt_app(slack_emu, seen)
    finally:
        handler.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bolt_app_over_http_events_api(slack_emu):
    seen = {}
    app = bolt_app(slack_emu, seen)
    port = free_port()
    server = SlackAppDevelopmentServer(port=port, path="/slack/events", app=app)
    thread = threading.Thread(target=server._server.serve_forever, daemon=True)
    thread.start()
    try:
        slack_emu.post("/_control/events_url", {"url": f"http://127.0.0.1:{port}/slack/events"})
        exercise_bolt_app(slack_emu, seen)
        attempts = slack_emu.get("/_control/calls")["deliveries"]
        assert attempts and all(a["via"] == "Http" for a in attempts)
        assert all(a["status"] == 200 for a in attempts)
    finally:
        server._server.shutdown()
        server._server.server_close()
