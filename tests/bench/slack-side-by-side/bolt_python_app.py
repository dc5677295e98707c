"""bolt-python peer: an AsyncApp on uvicorn that acknowledges `app_mention` and does nothing else.

Run by `run` as `uvicorn bolt_python_app:api --workers 2`. Env: SLACK_SIGNING_SECRET,
SLACK_BOT_TOKEN, SLACK_API_URL (the robit Slack emulator's `/api/`, answering the one
`auth.test` each worker makes on its first request; no other Web API call is made).
"""
import os

from slack_bolt.async_app import AsyncApp
from slack_bolt.adapter.asgi.async_handler import AsyncSlackRequestHandler
from slack_sdk.web.async_client import AsyncWebClient

client = AsyncWebClient(token=os.environ["SLACK_BOT_TOKEN"], base_url=os.environ["SLACK_API_URL"])
app = AsyncApp(client=client, signing_secret=os.environ["SLACK_SIGNING_SECRET"])


@app.event("app_mention")
async def on_mention(ack):
    await ack()


api = AsyncSlackRequestHandler(app)
