"""A discord.py 2.7 bot, unmodified except for two base URLs, against `robit emulate discord`.

Every flow goes through discord.py's own HTTP client, rate limiter and gateway (zlib-stream,
heartbeats, resume); the test plays the user through the emulator's control API and checks
both what discord.py saw and what the emulator recorded.
"""

import asyncio
import io

import discord
import pytest
import yarl
from discord import app_commands

from conftest import wait_until

FLAG_EPHEMERAL = 1 << 6
FLAG_SILENT = 1 << 12
FLAG_COMPONENTS_V2 = 1 << 15


def point_at(emu):
    """The only change a bot needs: where Discord's REST API and gateway are."""
    discord.http.Route.BASE = emu.env["DISCORD_API_BASE"]
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(emu.env["DISCORD_GATEWAY_URL"])


class Bot(discord.Client):
    def __init__(self, emu):
        intents = discord.Intents.default()
        intents.message_content = True
        # GUILD_CREATE arrives at once; don't wait the default 2 s for more guilds.
        super().__init__(intents=intents, guild_ready_timeout=0.2)
        self.emu = emu
        self.tree = app_commands.CommandTree(self)
        self.guild = discord.Object(int(emu.info["guild_id"]))
        self.seen = asyncio.Queue()
        self.reactions = asyncio.Queue()
        self.resumed = asyncio.Event()
        self.connects = 0

    async def on_message(self, message):
        if message.author.id != self.user.id:
            await self.seen.put(message)

    async def on_raw_reaction_add(self, payload):
        await self.reactions.put(payload)

    async def on_resumed(self):
        self.resumed.set()

    async def on_connect(self):
        self.connects += 1


async def started(emu, bot=None):
    point_at(emu)
    bot = bot or Bot(emu)
    task = asyncio.create_task(bot.start(emu.env["DISCORD_TOKEN"]))
    try:
        await asyncio.wait_for(bot.wait_until_ready(), 20)
    except BaseException:
        task.cancel()
        raise
    bot._task = task
    return bot


async def stop(bot):
    await bot.close()
    try:
        await asyncio.wait_for(bot._task, 10)
    except (asyncio.CancelledError, Exception):
        pass


def run(emu, body, bot_factory=None):
    async def main():
        bot = await started(emu, bot_factory(emu) if bot_factory else None)
        try:
            await body(bot)
        finally:
            await stop(bot)

    asyncio.run(main())


async def until(cond, timeout=10.0, what="condition"):
    """Polls `cond` until it is truthy, yielding to the bot's event loop meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = cond()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def emu_message(emu, mid):
    return emu.get(f"/_emulator/messages/{mid}")


def channel_of(bot):
    return bot.get_channel(int(bot.emu.info["channel_id"]))


# ----- login, gateway -----


def test_login_fetches_application_info_and_reaches_ready(discord_emu):
    async def body(bot):
        assert bot.user.id == int(discord_emu.info["bot_id"])
        assert bot.application_id == int(discord_emu.info["application_id"])
        assert bot.application.verify_key
        assert [g.id for g in bot.guilds] == [int(discord_emu.info["guild_id"])]
        assert channel_of(bot).name == "general"

    run(discord_emu, body)
    paths = [r["path"] for r in discord_emu.get("/_emulator/requests")]
    assert "/oauth2/applications/@me" in paths
    assert "/users/@me" in paths


def test_gateway_speaks_zlib_stream_and_acks_heartbeats(discord_emu):
    async def body(bot):
        # discord.py heartbeats as soon as HELLO arrives; the ACK sets its latency.
        await until(lambda: bot.latency != float("inf"), what="a heartbeat ACK")
        assert type(bot.ws._decompressor).COMPRESSION_TYPE == "zlib-stream"

    run(discord_emu, body)
    gw = discord_emu.get("/_emulator/gateway")
    assert gw["zlib_connections"] >= 1
    assert any(f["from_client"] and f["op"] == 1 for f in gw["frames"])
    assert any(not f["from_client"] and f["op"] == 11 for f in gw["frames"])


class EditBot(Bot):
    """Also records message edits, as discord.py reports them."""

    def __init__(self, emu):
        super().__init__(emu)
        self.edits = asyncio.Queue()

    async def on_message_edit(self, before, after):
        await self.edits.put((before, after))


def test_a_user_edit_arrives_as_message_update(discord_emu):
    async def body(bot):
        sent = discord_emu.post("/_emulator/messages", {"content": "first words"})
        await asyncio.wait_for(bot.seen.get(), 10)
        discord_emu.post(f"/_emulator/messages/{sent['id']}/edit", {"content": "better words"})
        before, after = await asyncio.wait_for(bot.edits.get(), 10)
        assert before.content == "first words"
        assert after.id == int(sent["id"])
        assert after.content == "better words"
        assert after.edited_at is not None
        assert emu_message(discord_emu, sent["id"])["content"] == "better words"

    run(discord_emu, body, EditBot)


def test_message_create_with_content_and_a_reply(discord_emu):
    async def body(bot):
        bot_id = discord_emu.info["bot_id"]
        sent = discord_emu.post("/_emulator/messages", {"content": f"<@{bot_id}> hello"})
        msg = await asyncio.wait_for(bot.seen.get(), 10)
        assert msg.id == int(sent["id"])
        assert msg.content.endswith("hello")
        assert bot.user in msg.mentions
        reply = await msg.reply("hi back")
        assert reply.reference.message_id == msg.id
        assert reply.type == discord.MessageType.reply
        stored = emu_message(discord_emu, reply.id)
        assert stored["message_reference"]["message_id"] == sent["id"]
        assert stored["referenced_message"]["id"] == sent["id"]
        # A user replying to the bot arrives with the referenced message resolved.
        discord_emu.post("/_emulator/messages", {"content": "thanks", "reply_to": str(reply.id)})
        answer = await asyncio.wait_for(bot.seen.get(), 10)
        assert answer.reference.message_id == reply.id
        assert answer.reference.resolved.content == "hi back"

    run(discord_emu, body)


def test_gateway_drop_resumes_and_missed_events_are_replayed(discord_emu):
    async def body(bot):
        connects = bot.connects
        discord_emu.post("/_emulator/gateway/drop")
        discord_emu.post("/_emulator/messages", {"content": "while you were away"})
        await asyncio.wait_for(bot.resumed.wait(), 30)
        msg = await asyncio.wait_for(bot.seen.get(), 10)
        assert msg.content == "while you were away"
        assert bot.connects == connects  # resumed, not a fresh IDENTIFY

    run(discord_emu, body)
    frames = discord_emu.get("/_emulator/gateway")["frames"]
    assert any(f["from_client"] and f["op"] == 6 for f in frames)
    assert any(f["t"] == "RESUMED" for f in frames)


def test_reconnect_op_resumes_and_invalid_session_reidentifies(discord_emu):
    async def body(bot):
        bot.resumed.clear()
        discord_emu.post("/_emulator/gateway/reconnect")
        await asyncio.wait_for(bot.resumed.wait(), 30)
        connects = bot.connects
        discord_emu.post("/_emulator/gateway/invalidate")
        await until(lambda: bot.connects > connects, timeout=30, what="a new IDENTIFY")
        await asyncio.wait_for(bot.wait_until_ready(), 20)
        discord_emu.post("/_emulator/messages", {"content": "after re-identify"})
        msg = await asyncio.wait_for(bot.seen.get(), 10)
        assert msg.content == "after re-identify"

    run(discord_emu, body)
    frames = discord_emu.get("/_emulator/gateway")["frames"]
    assert sum(1 for f in frames if f["from_client"] and f["op"] == 2) >= 2


# ----- messages -----


def test_embeds_only_silent_and_too_long_messages(discord_emu):
    async def body(bot):
        ch = channel_of(bot)
        embed = discord.Embed(title="Result", description="42").add_field(name="a", value="b")
        m = await ch.send(embed=embed)
        assert m.content == "" and m.embeds[0].title == "Result"
        assert emu_message(discord_emu, m.id)["embeds"][0]["fields"][0]["value"] == "b"
        silent = await ch.send("shh", silent=True)
        assert silent.flags.suppress_notifications
        assert emu_message(discord_emu, silent.id)["flags"] & FLAG_SILENT
        with pytest.raises(discord.HTTPException) as e:
            await ch.send("x" * 2001)
        assert e.value.code == 50035 and e.value.status == 400
        with pytest.raises(discord.HTTPException) as e:
            await bot.http.send_message(ch.id, params=discord.http.handle_message_parameters(content=""))
        assert e.value.code == 50006
        with pytest.raises(discord.NotFound) as e:
            await ch.fetch_message(1)
        assert e.value.code == 10008
        edited = await m.edit(content="now with text")
        assert edited.content == "now with text" and edited.embeds

    run(discord_emu, body)


def test_fetch_message_history_typing_delete(discord_emu):
    async def body(bot):
        ch = channel_of(bot)
        async with ch.typing():
            sent = [await ch.send(f"m{i}") for i in range(3)]
        assert int(discord_emu.get(f"/_emulator/channels/{ch.id}/typing")["count"]) >= 1
        got = await ch.fetch_message(sent[1].id)
        assert got.content == "m1"
        history = [m.content async for m in ch.history(limit=10)]
        assert history[:3] == ["m2", "m1", "m0"]
        older = [m.content async for m in ch.history(limit=10, before=sent[2])]
        assert older[:2] == ["m1", "m0"]
        oldest_first = [m.content async for m in ch.history(limit=2, after=sent[0], oldest_first=True)]
        assert oldest_first == ["m1", "m2"]
        await sent[0].delete()
        with pytest.raises(discord.NotFound):
            await ch.fetch_message(sent[0].id)

    run(discord_emu, body)


def test_multipart_attachments(discord_emu):
    async def body(bot):
        ch = channel_of(bot)
        files = [discord.File(io.BytesIO(b"hello file"), "a.txt"),
                 discord.File(io.BytesIO(b"\x89PNG..."), "b.png")]
        m = await ch.send("two files", files=files)
        assert [a.filename for a in m.attachments] == ["a.txt", "b.png"]
        assert m.attachments[0].size == len(b"hello file")
        # The attachment URL is served by the emulator.
        assert await m.attachments[0].read() == b"hello file"

    run(discord_emu, body)


def test_reactions_both_ways(discord_emu):
    async def body(bot):
        ch = channel_of(bot)
        m = await ch.send("react to me")
        await m.add_reaction("👍")
        fetched = await ch.fetch_message(m.id)
        assert [(str(r.emoji), r.count, r.me) for r in fetched.reactions] == [("👍", 1, True)]
        discord_emu.post("/_emulator/reactions", {"message_id": str(m.id), "emoji": "🎉"})
        # Discord also tells the bot about its own reaction; skip to alice's.
        mine = await asyncio.wait_for(bot.reactions.get(), 10)
        assert str(mine.emoji) == "👍" and mine.user_id == bot.user.id
        payload = await asyncio.wait_for(bot.reactions.get(), 10)
        assert str(payload.emoji) == "🎉"
        assert payload.user_id == int(discord_emu.info["user_id"])
        assert payload.message_id == m.id
        users = [u.id async for u in fetched.reactions[0].users()]
        assert users == [bot.user.id]
        await m.remove_reaction("👍", bot.user)
        again = await ch.fetch_message(m.id)
        assert [str(r.emoji) for r in again.reactions] == ["🎉"]

    run(discord_emu, body)


def test_pins(discord_emu):
    async def body(bot):
        ch = channel_of(bot)
        a = await ch.send("pin a")
        b = await ch.send("pin b")
        await a.pin()
        await b.pin()
        pinned = [m.id async for m in ch.pins()]
        assert pinned == [b.id, a.id]
        assert (await ch.fetch_message(a.id)).pinned
        await a.unpin()
        assert [m.id async for m in ch.pins()] == [b.id]
        assert discord_emu.get(f"/_emulator/channels/{ch.id}/pins") == [str(b.id)]

    run(discord_emu, body)


def test_threads_from_a_message_and_standalone(discord_emu):
    async def body(bot):
        ch = channel_of(bot)
        m = await ch.send("start here")
        t = await m.create_thread(name="from message")
        assert t.id == m.id and t.type == discord.ChannelType.public_thread
        await t.send("inside")
        with pytest.raises(discord.HTTPException) as e:
            await m.create_thread(name="again")
        assert e.value.code == 160004
        private = await ch.create_thread(name="standalone")
        assert private.type == discord.ChannelType.private_thread
        public = await ch.create_thread(name="open", type=discord.ChannelType.public_thread)
        assert public.type == discord.ChannelType.public_thread
        await public.send("hello thread")
        names = [c["name"] for c in discord_emu.get(f"/_emulator/channels/{ch.id}/threads")]
        assert names == ["from message", "standalone", "open"]
        assert [x["content"] for x in discord_emu.get(f"/_emulator/channels/{t.id}/messages")] == ["inside"]

    run(discord_emu, body)


def test_dm_channel(discord_emu):
    async def body(bot):
        alice = await bot.fetch_user(int(discord_emu.info["user_id"]))
        dm = await alice.create_dm()
        assert dm.id == int(discord_emu.info["dm_channel_id"])
        await dm.send("psst")
        msgs = discord_emu.get(f"/_emulator/channels/{dm.id}/messages")
        assert [m["content"] for m in msgs] == ["psst"]
        discord_emu.post("/_emulator/messages", {"channel_id": str(dm.id), "content": "hi bot"})
        got = await asyncio.wait_for(bot.seen.get(), 10)
        assert isinstance(got.channel, discord.DMChannel) and got.content == "hi bot"

    run(discord_emu, body)


# ----- rate limits -----


def test_rate_limit_headers_pace_discord_py_without_429s(discord_emu):
    async def body(bot):
        ch = channel_of(bot)
        for i in range(7):  # the emulated channel bucket is 5 per 5 s
            await ch.send(f"burst {i}")

    run(discord_emu, body)
    posts = [r for r in discord_emu.get("/_emulator/requests")
             if r["method"] == "POST" and r["path"].endswith("/messages")]
    assert len(posts) == 7 and all(r["status"] == 200 for r in posts)


def test_global_429_is_waited_out_and_retried(discord_emu):
    async def body(bot):
        discord_emu.post("/_emulator/faults", {"method": "POST", "path_prefix": "/channels/",
                                               "count": 1, "kind": "global_rate_limit",
                                               "retry_after_ms": 300})
        m = await channel_of(bot).send("after the global limit")
        assert m.content == "after the global limit"

    run(discord_emu, body)
    statuses = [r["status"] for r in discord_emu.get("/_emulator/requests")
                if r["method"] == "POST" and r["path"].startswith("/channels/")]
    assert statuses == [429, 200]


def test_route_429_is_retried(discord_emu):
    async def body(bot):
        discord_emu.post("/_emulator/faults", {"method": "POST", "path_prefix": "/channels/",
                                               "count": 2, "kind": "rate_limit",
                                               "retry_after_ms": 100})
        await channel_of(bot).send("third time lucky")

    run(discord_emu, body)
    statuses = [r["status"] for r in discord_emu.get("/_emulator/requests")
                if r["method"] == "POST" and r["path"].startswith("/channels/")]
    assert statuses == [429, 429, 200]


# ----- slash commands and interactions -----


def command_bot(emu):
    bot = Bot(emu)
    bot.results = {}

    @bot.tree.command(name="ask", description="Ask something", guild=bot.guild)
    async def ask(interaction: discord.Interaction, prompt: str):
        resp = await interaction.response.send_message(f"you asked: {prompt}")
        bot.results["callback"] = resp
        follow = await interaction.followup.send("a follow-up", wait=True)
        bot.results["followup"] = follow
        original = await interaction.edit_original_response(content="edited answer")
        bot.results["edited"] = original
        fetched = await interaction.original_response()
        bot.results["fetched"] = fetched
        await interaction.delete_original_response()
        bot.results["done"] = True

    @bot.tree.command(name="slow", description="Think first", guild=bot.guild)
    async def slow(interaction: discord.Interaction):
        resp = await interaction.response.defer(thinking=True)
        bot.results["defer"] = resp
        msg = await interaction.followup.send("thought about it", wait=True)
        bot.results["slow_followup"] = msg
        secret = await interaction.followup.send("only you", ephemeral=True, wait=True)
        bot.results["ephemeral"] = secret
        bot.results["slow_done"] = True

    @bot.tree.command(name="card", description="Embeds only", guild=bot.guild)
    async def card(interaction: discord.Interaction):
        await interaction.response.send_message(embed=discord.Embed(title="card only"))
        bot.results["card_done"] = True

    return bot


def test_tree_sync_and_slash_command_with_response_followups_edit_delete(discord_emu):
    async def body(bot):
        synced = await bot.tree.sync(guild=bot.guild)
        assert sorted(c.name for c in synced) == ["ask", "card", "slow"]
        cmd = discord_emu.post("/_emulator/commands", {"name": "ask", "options": {"prompt": "2+2"}})
        await until(lambda: bot.results.get("done"), what="the /ask handler")
        resp = bot.results["callback"]
        assert isinstance(resp, discord.InteractionCallbackResponse)
        assert resp.type == discord.InteractionResponseType.channel_message
        assert isinstance(resp.resource, discord.InteractionMessage)
        assert resp.resource.content == "you asked: 2+2"
        assert resp.message_id == resp.resource.id
        assert bot.results["followup"].content == "a follow-up"
        assert bot.results["edited"].content == "edited answer"
        assert bot.results["fetched"].content == "edited answer"
        i = discord_emu.get(f"/_emulator/interactions/{cmd['id']}")
        assert i["response_type"] == 4 and i["original"] is None  # deleted
        assert [f["content"] for f in i["followups"]] == ["a follow-up"]

    run(discord_emu, body, command_bot)
    callbacks = [r for r in discord_emu.get("/_emulator/requests") if r["path"].endswith("/callback")]
    assert callbacks and all(r["status"] == 200 for r in callbacks)


def test_deferred_slash_command_and_ephemeral_followup(discord_emu):
    async def body(bot):
        await bot.tree.sync(guild=bot.guild)
        cmd = discord_emu.post("/_emulator/commands", {"name": "slow"})
        await until(lambda: bot.results.get("slow_done"), what="the /slow handler")
        resp = bot.results["defer"]
        assert resp.is_thinking()
        assert resp.type == discord.InteractionResponseType.deferred_channel_message
        i = discord_emu.get(f"/_emulator/interactions/{cmd['id']}")
        # The first follow-up after a thinking defer replaces the placeholder.
        assert i["response_type"] == 5
        assert i["original"]["content"] == "thought about it"
        assert i["original"]["flags"] & (1 << 7) == 0
        assert i["followups"][0]["flags"] & FLAG_EPHEMERAL
        visible = [m["content"] for m in discord_emu.get(
            f"/_emulator/channels/{discord_emu.info['channel_id']}/messages")]
        assert "only you" not in visible and "thought about it" in visible
        cmd2 = discord_emu.post("/_emulator/commands", {"name": "card"})
        await until(lambda: bot.results.get("card_done"), what="the /card handler")
        card = discord_emu.get(f"/_emulator/interactions/{cmd2['id']}")["original"]
        assert card["content"] == "" and card["embeds"][0]["title"] == "card only"

    run(discord_emu, body, command_bot)


# ----- components -----


class Choices(discord.ui.View):
    def __init__(self, results):
        super().__init__(timeout=None)
        self.results = results

    @discord.ui.button(label="Go", custom_id="go", style=discord.ButtonStyle.primary)
    async def go(self, interaction: discord.Interaction, button: discord.ui.Button):
        await interaction.response.edit_message(content="clicked", view=None)
        self.results["clicked"] = interaction.user.id

    @discord.ui.select(custom_id="pick", options=[discord.SelectOption(label="a"),
                                                  discord.SelectOption(label="b")])
    async def pick(self, interaction: discord.Interaction, select: discord.ui.Select):
        await interaction.response.send_message(f"picked {','.join(select.values)}", ephemeral=True)
        self.results["picked"] = list(select.values)


def test_buttons_and_select_menus(discord_emu):
    async def body(bot):
        results = {}
        m = await channel_of(bot).send("choose", view=Choices(results))
        stored = emu_message(discord_emu, m.id)
        row_types = [[c["type"] for c in row["components"]] for row in stored["components"]]
        assert row_types == [[2], [3]]
        discord_emu.post("/_emulator/components", {"message_id": str(m.id), "custom_id": "pick",
                                                   "values": ["b"]})
        await until(lambda: results.get("picked"), what="the select callback")
        assert results["picked"] == ["b"]
        discord_emu.post("/_emulator/components", {"message_id": str(m.id), "custom_id": "go"})
        await until(lambda: results.get("clicked"), what="the button callback")
        after = emu_message(discord_emu, m.id)
        assert after["content"] == "clicked" and after["components"] == []
        status, _ = discord_emu.request("POST", "/_emulator/components",
                                        {"message_id": str(m.id), "custom_id": "missing"})
        assert status == 404

    run(discord_emu, body)


def test_components_v2_layout(discord_emu):
    results = {}

    class Layout(discord.ui.LayoutView):
        container = discord.ui.Container(discord.ui.TextDisplay("# Hello v2"),
                                          accent_colour=discord.Colour.blurple())
        row = discord.ui.ActionRow()

        @row.button(label="OK", custom_id="v2ok")
        async def ok(self, interaction: discord.Interaction, button: discord.ui.Button):
            await interaction.response.send_message("v2 clicked")
            results["ok"] = True

    async def body(bot):
        m = await channel_of(bot).send(view=Layout(timeout=None))
        stored = emu_message(discord_emu, m.id)
        assert stored["flags"] & FLAG_COMPONENTS_V2
        assert stored["content"] == ""
        assert [c["type"] for c in stored["components"]] == [17, 1]
        assert stored["components"][0]["components"][0]["content"] == "# Hello v2"
        assert m.flags.components_v2
        discord_emu.post("/_emulator/components", {"message_id": str(m.id), "custom_id": "v2ok"})
        await until(lambda: results.get("ok"), what="the v2 button callback")
        # Content next to the v2 flag is refused, as Discord does.
        route = discord.http.Route("POST", "/channels/{channel_id}/messages",
                                   channel_id=m.channel.id)
        with pytest.raises(discord.HTTPException) as e:
            await bot.http.request(route, json={
                "content": "x", "flags": FLAG_COMPONENTS_V2,
                "components": [{"type": 10, "content": "text"}]})
        assert e.value.code == 50035

    run(discord_emu, body)
