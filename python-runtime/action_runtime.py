"""The helpers and the types of `context`, importable: `from action_runtime import Context`.

A script has them as globals already; this module is for authors who prefer explicit imports,
and it is what the editor stubs (stubs/action_runtime.pyi, `action-worker stubs`) describe.
At run time the types are plain TypedDicts: a `context` is a dict.
"""

from typing import Any, Literal, NotRequired, TypedDict

from helpers import GLOBALS as _HELPERS


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


TYPES = {
    t.__name__: t
    for t in (Message, Conversation, ActionInfo, JobInfo, Context, Reply, MetadataReply,
              TagReply, EventReply, SheetsReply, Variant)
}
globals().update(_HELPERS)
__all__ = sorted([*TYPES, *_HELPERS])
