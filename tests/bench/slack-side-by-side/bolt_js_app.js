// Bolt for JavaScript peer: the default HTTPReceiver, acknowledging `app_mention` only.
// Env: SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN, PORT. tokenVerificationEnabled: false with
// botId/botUserId given, so no Web API call (auth.test) is ever made.
const { App, LogLevel } = require('@slack/bolt');

const app = new App({
  signingSecret: process.env.SLACK_SIGNING_SECRET,
  token: process.env.SLACK_BOT_TOKEN,
  tokenVerificationEnabled: false,
  botId: 'B0ROBIT',
  botUserId: 'U0ROBIT',
  logLevel: LogLevel.ERROR,
  clientOptions: { slackApiUrl: process.env.SLACK_API_URL },
});

app.event('app_mention', async () => {});

(async () => {
  await app.start(Number(process.env.PORT));
  console.log(`bolt-js listening on ${process.env.PORT}`);
})();
