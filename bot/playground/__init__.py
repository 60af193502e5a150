"""A local Slack stand-in and the playground in the browser (``python -m bot demo``).

* :mod:`.slack_api`: :class:`~.slack_api.FakeSlack`, the fake Slack Web API (plus
  ``response_url`` posts and file uploads) that the test suite and the playground share, so
  both agree on what Slack accepts and refuses.
* :mod:`.slack_requests`: the requests Slack sends an app (slash commands, interactivity,
  events), shaped and signed as Slack sends them; the tests' fixtures and the playground use it.
* :mod:`.workspace`: :class:`~.workspace.WorkspaceState`, what a Slack client would show
  (channels, messages, threads, ephemerals, DMs, modal stacks, Home tabs), kept up to date
  from the Web API calls the stand-in accepts.
* :mod:`.page`: the playground's HTTP endpoints on the stand-in's server (the page, its static
  files and its JSON API under ``/playground/api/``).
* :mod:`.clock`: the simulated clock the bot runs on in the playground.
* :mod:`.demo`: ``python -m bot demo``: the Vast.ai simulator, the stand-in and the bot,
  started together with no configuration.
* :mod:`.screenshots`: ``--screenshots DIR``, the README's pictures taken from the page.
* ``static/``: the page (HTML, JavaScript, CSS).

It all listens on 127.0.0.1 without a login, so it keeps other sites in the person's browser
out: the page's API answers only requests to its own host name from its own origin with a JSON
body (:mod:`.page`), the Web API only the bot's token, and each ``response_url`` ends in a secret.
The demo reads no ``.env`` and no environment (:func:`.demo.demo_settings`): it rents from the
simulator only and writes only its own database.
"""
