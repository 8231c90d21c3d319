# The helpers and types that a script has as globals, for editors built on pyright (Pylance,
# basedpyright): a `__builtins__.pyi` at the root of a project adds names to the builtins.
# `action-worker stubs DIR` writes this file and action_runtime.pyi into DIR.
from action_runtime import (
    ActionInfo as ActionInfo,
    Context as Context,
    Conversation as Conversation,
    JobInfo as JobInfo,
    Message as Message,
    add_conversation_event as add_conversation_event,
    add_conversation_tag as add_conversation_tag,
    add_google_sheets_row as add_google_sheets_row,
    delete_conversation_metadata as delete_conversation_metadata,
    get_ab_test_variant as get_ab_test_variant,
    get_conversation_metadata as get_conversation_metadata,
    hand_off_conversation as hand_off_conversation,
    is_holiday as is_holiday,
    llm_classify_binary as llm_classify_binary,
    llm_classify_category as llm_classify_category,
    set_conversation_metadata as set_conversation_metadata,
)
