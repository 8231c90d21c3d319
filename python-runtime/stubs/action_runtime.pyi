"""Types of the action runtime, for editors and type checkers (`action-worker stubs`).

`execute_action(context: Context)` gets completion for `context["args"]`,
`context["conversation"]` and the rest; the helpers of SPEC §4 are typed below. In a script
the helpers and these types are globals (no import needed); `from action_runtime import ...`
works as well, at run time and in an editor.
"""

import datetime
from typing import Any, Literal, NotRequired, TypedDict

class Message(TypedDict):
    sender: Literal["customer", "bot", "agent"]
    content: str
    timestamp: str
    channel: NotRequired[str]

class Conversation(TypedDict):
    id: str
    publicId: NotRequired[str]
    subject: NotRequired[str]
    initialChannel: NotRequired[str]
    latestChannel: NotRequired[str]
    messages: list[Message]
    metadata: dict[str, str]
    tags: list[str]

class ActionInfo(TypedDict):
    name: str

class JobInfo(TypedDict):
    id: str
    attempt: int
    test: bool

class Context(TypedDict):
    """What `execute_action` receives."""

    args: dict[str, Any]
    conversation: Conversation | None
    action: ActionInfo
    job: JobInfo
    business: NotRequired[dict[str, Any]]
    customer: NotRequired[dict[str, Any]]

class Reply(TypedDict):
    success: bool
    message: str

class MetadataReply(Reply):
    key: str
    value: str

class TagReply(Reply):
    tagId: str | None

class EventReply(Reply):
    eventId: str | None

class SheetsReply(TypedDict):
    success: bool
    updatedRange: str

class Variant(TypedDict):
    name: str
    weight: NotRequired[float]

def get_conversation_metadata(context: Context, key: str) -> str | None: ...
def set_conversation_metadata(context: Context, key: str, value: str | int | float | bool) -> MetadataReply: ...
def delete_conversation_metadata(context: Context, key: str) -> Reply: ...
def add_conversation_tag(context: Context, tag: str) -> TagReply: ...
def add_conversation_event(context: Context, event: str) -> EventReply: ...
def hand_off_conversation(
    context: Context, reason: str | None = None, phone_destination: str | None = None
) -> Reply: ...
def get_ab_test_variant(context: Context, test_name: str, possible_variants: list[str | Variant]) -> str: ...
def llm_classify_binary(prompt: str, input: Any, fallback: bool | None = None) -> bool: ...
def llm_classify_category(prompt: str, input: Any, options: list[str], fallback: str | None = None) -> str: ...
def add_google_sheets_row(sheet_id: str, data: list[Any] | dict[str, Any]) -> SheetsReply: ...
def is_holiday(
    country: str,
    state: str | None = None,
    region: str | None = None,
    check_date: datetime.date | datetime.datetime | str | None = None,
) -> bool: ...
