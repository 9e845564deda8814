"""Errors raised by the MiniMax client, and which `base_resp` codes are worth retrying.

MiniMax's native `/v1/*` routes answer business errors with HTTP 200 and a non-zero
`base_resp.status_code` (MiniMax's own MCP client checks `base_resp` after `raise_for_status()`
passes), so a client has to classify codes itself. The classes below follow MiniMax's error-code
table (https://platform.minimax.io/docs/api-reference/errorcode): transient codes are retried,
the rest are final.
"""

from __future__ import annotations

# Transient: retry with backoff (unknown error, timeout, RPM limit, internal errors, TPM limit,
# connection limit, rate-growth limit), per the error-code table above.
RETRYABLE_CODES: frozenset[int] = frozenset({1000, 1001, 1002, 1013, 1024, 1033, 1039, 1041, 2045})
# Rate limits get a longer first backoff: MiniMax counts requests per minute.
RATE_LIMIT_CODES: frozenset[int] = frozenset({1002, 1039, 2045})
# Bad key, or a key used against the other region's host (the most common complaint:
# MiniMax-AI/MiniMax-MCP issue #8, MiniMax-AI/MiniMax-01 issue #44).
AUTH_CODES: frozenset[int] = frozenset({1004, 2049})
# Sensitive input (1026) or output (1027).
CONTENT_CODES: frozenset[int] = frozenset({1026, 1027})

_REGION_HINT = (
    "check the key, and that key and host are from the same region: international keys need "
    "https://api.minimax.io, mainland-China keys https://api.minimaxi.com (set MINIMAX_API_HOST)"
)


class MiniMaxError(Exception):
    """Base class of every error the MiniMax client raises."""


class MiniMaxAPIError(MiniMaxError):
    """The API answered with a non-zero `base_resp.status_code` or an HTTP error.

    Attributes:
        status_code: MiniMax's `base_resp.status_code` (0 when the API gave none, e.g. a bare HTTP error).
        status_msg: MiniMax's `base_resp.status_msg` (or the HTTP reason).
        http_status: the HTTP status of the response.
        trace_id: the `Trace-Id` response header, which MiniMax support asks for ("" if absent).
        endpoint: the path that was called.
    """

    def __init__(self, status_code: int, status_msg: str, *, http_status: int, trace_id: str, endpoint: str):
        self.status_code = status_code
        self.status_msg = status_msg
        self.http_status = http_status
        self.trace_id = trace_id
        self.endpoint = endpoint
        super().__init__(self._describe())

    def _describe(self) -> str:
        code = f"error {self.status_code}" if self.status_code else f"HTTP {self.http_status}"
        text = f"MiniMax {self.endpoint} failed with {code}: {self.status_msg or 'no message'}"
        if self.trace_id:
            text += f" (Trace-Id {self.trace_id})"
        return text

    @property
    def retryable(self) -> bool:
        """Whether waiting and sending the same request again may succeed."""
        return self.status_code in RETRYABLE_CODES or self.http_status in (408, 429) or self.http_status >= 500


class MiniMaxAuthError(MiniMaxAPIError):
    """The key was refused (1004 or 2049, or HTTP 401/403)."""

    def _describe(self) -> str:
        return f"{super()._describe()}; {_REGION_HINT}"


class MiniMaxRateLimitError(MiniMaxAPIError):
    """Still rate-limited (1002 RPM, 1039 TPM, 2045 growth) after every retry."""


class MiniMaxContentError(MiniMaxAPIError):
    """The prompt or the generated output was flagged as sensitive (1026 / 1027)."""


class MiniMaxTransportError(MiniMaxError):
    """The API could not be reached, or answered with something that is not MiniMax JSON."""


class MiniMaxTaskFailed(MiniMaxError):
    """A video generation task ended in status `Fail`.

    Attributes:
        task_id: the task that failed.
        status_code: `base_resp.status_code` of the final query (e.g. 1027), 0 if the API gave none.
        status_msg: the API's explanation.
    """

    def __init__(self, task_id: str, status_code: int, status_msg: str):
        self.task_id = task_id
        self.status_code = status_code
        self.status_msg = status_msg
        reason = f"error {status_code}: {status_msg}" if status_code else (status_msg or "no reason given")
        super().__init__(f"MiniMax video task {task_id} failed ({reason})")


class MiniMaxTimeoutError(MiniMaxError):
    """A task did not finish before the polling deadline; it may still finish later."""

    def __init__(self, task_id: str, last_status: str, waited_s: float):
        self.task_id = task_id
        self.last_status = last_status
        super().__init__(
            f"MiniMax video task {task_id} was still {last_status!r} after {waited_s:.0f} s; "
            f"query it again later with its task id"
        )


def error_for(
    status_code: int, status_msg: str, *, http_status: int, trace_id: str, endpoint: str
) -> MiniMaxAPIError:
    """The most specific `MiniMaxAPIError` subclass for a code / HTTP status."""
    if status_code in AUTH_CODES or http_status in (401, 403):
        cls: type[MiniMaxAPIError] = MiniMaxAuthError
    elif status_code in RATE_LIMIT_CODES or http_status == 429:
        cls = MiniMaxRateLimitError
    elif status_code in CONTENT_CODES:
        cls = MiniMaxContentError
    else:
        cls = MiniMaxAPIError
    return cls(status_code, status_msg, http_status=http_status, trace_id=trace_id, endpoint=endpoint)
