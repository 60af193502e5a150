"""A local Slack stand-in: the fake Slack Web API the test suite uses (:mod:`.slack_api`)."""
