"""The Slack edge: everything that speaks Slack, and nothing else does.

Map (one deployment's messages pass through these in this order):

* :mod:`bot.slack.server` — HTTP mode (waitress) or Socket Mode, plus ``/healthz`` and
  ``/metrics``; :mod:`bot.slack.ingress` — size, signature, then parsing, before Bolt.
* :mod:`bot.slack.app` — the Bolt ``App`` factory: the payload gate, then every listener.
* :mod:`bot.slack.listeners` — thin listeners (parse, ack, hand over to a service), one module
  per feature; :mod:`bot.slack.listeners.gate` and ``models`` refuse malformed payloads first.
* :mod:`bot.slack.blocks` — pure Block Kit builders: data in, ``dict``s out.
* :mod:`bot.slack.messages` — the services' messages port, implemented: each message rendered
  once by the builders and sent through :mod:`bot.slack.notifier`, which turns every Slack
  failure into a returned outcome; :mod:`bot.slack.outbox` paces and coalesces the edits
  (``chat.update``, ``views.publish``) per workspace.
* :mod:`bot.slack.clients` — which bot token a message goes out with (one per workspace);
  :mod:`bot.slack.token_store` and :mod:`bot.slack.installation_cache` keep OAuth installations
  (encrypted at rest, cached briefly); :mod:`bot.slack.members` answers ``users.info``.
* :mod:`bot.slack.limits` — Slack's documented payload limits, checked before sending.

Services (:mod:`bot.services`) never import this package except through the messages port they
are handed; :mod:`storage` and :mod:`catalog` never import it at all.
"""
