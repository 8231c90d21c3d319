"""A customer's profile handle from their name (runtime profile "contacts": python-slugify)."""

from slugify import slugify


def execute_action(context: Context):
    args = context["args"]
    parts = [args["name"], args.get("city") or ""]
    handle = slugify(" ".join(parts), max_length=48, word_boundary=True)
    if not handle:
        return {"handle": None, "reason": "the name has no letters or digits to make a handle of"}
    return {"handle": handle, "url": f"https://crm.example.com/customers/{handle}"}
