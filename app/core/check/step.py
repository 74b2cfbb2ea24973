"""One check's step: the prompts it sends, and the exceptions that make its row fail or skip."""

CHAT = "Say hello to the family in one short sentence."
PHOTO = "Describe this photo in one sentence."
CHAT_TOKENS = 16


class StepFailed(Exception):
    """A check failed; the message says why, in words."""


class StepSkipped(Exception):
    """A check could not run; the message says why."""
