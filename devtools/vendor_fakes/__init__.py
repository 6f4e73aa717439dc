"""Fakes of the tool vendors (OpenRouter, AgentMail, Telnyx) per specs/*.md: one state and one set of
handlers each, installed on a respx router in unit tests or served over HTTP for real processes."""
