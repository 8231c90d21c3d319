"""The helpers of SPEC §4 that a script calls as globals, served by the host.

Type rules are checked here (they raise in the script); every limit and all state live on
the host, which holds the conversation snapshot and records the effects.
"""

import hashlib
import json

from componentize_py_types import Err
from wit_world.imports import llm as _llm
from wit_world.imports import sheets as _sheets

from holiday_helper import is_holiday

from wit_world.imports import conversation as _conversation

_NO_CONVERSATION = "no conversation"


def _has_conversation(context):
    return isinstance(context, dict) and context.get("conversation") is not None and _conversation.present()


def _reply(reply, *fields):
    out = {"success": reply.success, "message": reply.message}
    for name, attr in fields:
        out[name] = getattr(reply, attr)
    return out


def _text(name, value):
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    return value


def get_conversation_metadata(context, key):
    """The value of metadata `key`, or None."""
    key = _text("key", key)
    if not _has_conversation(context):
        return None
    return _conversation.get_metadata(key)


def set_conversation_metadata(context, key, value):
    """Sets metadata `key`; int, float and bool values are turned into str."""
    key = _text("key", key)
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, (int, float)):
        value = str(value)
    elif not isinstance(value, str):
        raise TypeError(f"value must be a str, int, float or bool, not {type(value).__name__}")
    if not _has_conversation(context):
        return {"success": False, "message": _NO_CONVERSATION, "key": key, "value": value}
    return _reply(_conversation.set_metadata(key, value), ("key", "key"), ("value", "value"))


def delete_conversation_metadata(context, key):
    key = _text("key", key)
    if not _has_conversation(context):
        return {"success": False, "message": _NO_CONVERSATION}
    return _reply(_conversation.delete_metadata(key))


def add_conversation_tag(context, tag):
    tag = _text("tag", tag)
    if not _has_conversation(context):
        return {"success": False, "message": _NO_CONVERSATION, "tagId": None}
    return _reply(_conversation.add_tag(tag), ("tagId", "tag_id"))


def add_conversation_event(context, event):
    event = _text("event", event)
    if not _has_conversation(context):
        return {"success": False, "message": _NO_CONVERSATION, "eventId": None}
    return _reply(_conversation.add_event(event), ("eventId", "event_id"))


def hand_off_conversation(context, reason=None, phone_destination=None):
    if reason is not None:
        reason = _text("reason", reason)
    if phone_destination is not None:
        phone_destination = _text("phone_destination", phone_destination)
    if not _has_conversation(context):
        return {"success": False, "message": _NO_CONVERSATION}
    return _reply(_conversation.hand_off(reason, phone_destination))


def _variants(possible_variants):
    if not isinstance(possible_variants, (list, tuple)) or not possible_variants:
        raise ValueError("possible_variants must be a non-empty list")
    out = []
    for i, variant in enumerate(possible_variants):
        if isinstance(variant, str):
            name, weight = variant, 1
        elif isinstance(variant, dict):
            name, weight = variant.get("name"), variant.get("weight", 1)
        else:
            raise ValueError(f"variant {i} must be a str or a dict with name and weight")
        if not isinstance(name, str) or not name:
            raise ValueError(f"variant {i} has no name")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise ValueError(f"variant {name!r} has a weight that is not a number >= 0: {weight!r}")
        out.append((name, float(weight)))
    total = sum(w for _, w in out)
    if total <= 0:
        raise ValueError("every variant has weight 0")
    return out, total


def get_ab_test_variant(context, test_name, possible_variants):
    """A sticky, weighted, deterministic variant of `test_name` for this conversation."""
    test_name = _text("test_name", test_name)
    variants, total = _variants(possible_variants)
    key = f"ab_test:{test_name}"
    has_conversation = _has_conversation(context)
    if has_conversation:
        current = _conversation.get_metadata(key)
        if current is not None:
            return current
    conversation_id = ""
    if has_conversation:
        conversation_id = str(context["conversation"].get("id", ""))
    digest = hashlib.sha256(f"{conversation_id}\x00{test_name}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * total
    chosen = variants[-1][0]
    for name, weight in variants:
        if point < weight:
            chosen = name
            break
        point -= weight
    if has_conversation:
        _conversation.set_metadata(key, chosen)
        _conversation.add_tag(f"ab:{test_name}:{chosen}")
        _conversation.add_event(f"A/B test '{test_name}': assigned variant '{chosen}'")
    return chosen


def _classify(name, prompt, input, options, fallback):
    prompt = _text("prompt", prompt)
    text = input if isinstance(input, str) else json.dumps(input, ensure_ascii=False, default=str)
    try:
        return _llm.classify(prompt, text, list(options))
    except Err as err:
        if fallback is not None:
            return None
        raise RuntimeError(f"{name} failed: {err.value}") from None


def llm_classify_binary(prompt, input, fallback=None):
    """True or False for `input` under `prompt`; on any failure `fallback` if given, else raises."""
    answer = _classify("llm_classify_binary", prompt, input, ["true", "false"], fallback)
    if answer is None:
        return fallback
    return answer == "true"


def llm_classify_category(prompt, input, options, fallback=None):
    """One of `options` for `input` under `prompt`; on any failure `fallback` if given, else raises."""
    if not isinstance(options, (list, tuple)) or len(options) < 2:
        raise ValueError("options must be a list of at least 2 categories")
    if not all(isinstance(o, str) and o for o in options) or len(set(options)) != len(options):
        raise ValueError("options must be distinct, non-empty strings")
    answer = _classify("llm_classify_category", prompt, input, options, fallback)
    return fallback if answer is None else answer


def add_google_sheets_row(sheet_id, data):
    """Appends one row: `data` is a list (the row) or a dict (keys matched to the header row)."""
    sheet_id = _text("sheet_id", sheet_id)
    if not isinstance(data, (list, tuple, dict)):
        raise TypeError(f"data must be a list or a dict, not {type(data).__name__}")
    try:
        row = json.dumps(list(data) if isinstance(data, tuple) else data, ensure_ascii=False, default=str)
        updated = _sheets.append_row(sheet_id, row)
    except Err as err:
        return {"success": False, "message": err.value, "updatedRange": None}
    return {"success": True, "updatedRange": updated}


GLOBALS = {
    f.__name__: f
    for f in (
        get_conversation_metadata,
        set_conversation_metadata,
        delete_conversation_metadata,
        add_conversation_tag,
        add_conversation_event,
        hand_off_conversation,
        get_ab_test_variant,
        is_holiday,
        llm_classify_binary,
        llm_classify_category,
        add_google_sheets_row,
    )
}
