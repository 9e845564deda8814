"""The `minimax` captioning backend: MiniMax's vision chat (`POST /v1/text/chatcompletion_v2`).

Images go out as JPEG data URLs in `image_url` parts. `MiniMax-Text-01` is the default because it is
the model MiniMax documents for both image input and a `json_schema` response format
(https://platform.minimax.io/docs/api-reference/text-post); other models are asked for JSON in the
instructions only, and every reply is validated either way (`kinema.caption.vlm`).
"""

from __future__ import annotations

from collections.abc import Sequence

from kinema.clients.minimax import DEFAULT_CHAT_MODEL, ChatCompletion, Message, MiniMaxClient

# Models MiniMax documents `response_format.json_schema` for (the text-post page above).
JSON_SCHEMA_MODELS = frozenset({"MiniMax-Text-01"})


class MiniMaxChat:
    """A `ChatBackend` over `MiniMaxClient.chat`.

    Args:
        client: an open client (its config carries key, host, timeouts and retries).
        model: chat model that accepts images.
        max_completion_tokens: reply budget; a caption needs a few hundred tokens.
        temperature: in (0, 1]; low keeps captions factual.
    """

    def __init__(
        self,
        client: MiniMaxClient,
        *,
        model: str = DEFAULT_CHAT_MODEL,
        max_completion_tokens: int = 1024,
        temperature: float = 0.1,
    ):
        self.client = client
        self.model = model
        self.max_completion_tokens = max_completion_tokens
        self.temperature = temperature

    def complete(self, messages: Sequence[Message], json_schema: dict, schema_name: str) -> ChatCompletion:
        return self.client.chat(
            messages,
            model=self.model,
            json_schema=json_schema if self.model in JSON_SCHEMA_MODELS else None,
            schema_name=schema_name,
            max_completion_tokens=self.max_completion_tokens,
            temperature=self.temperature,
        )
