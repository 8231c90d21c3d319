"""Validates a customer's phone number and normalises it to E.164 (runtime profile "contacts")."""

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, PhoneNumberType, timezone

KINDS = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE: "landline",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "landline or mobile",
    PhoneNumberType.TOLL_FREE: "toll free",
    PhoneNumberType.VOIP: "voip",
}


def execute_action(context: Context):
    args = context["args"]
    country = (args.get("country") or "").upper() or None
    try:
        number = phonenumbers.parse(args["phone"], country)
    except NumberParseException as exc:
        return {"valid": False, "reason": str(exc)}
    if not phonenumbers.is_valid_number(number):
        return {"valid": False, "reason": "not a number in use in its country"}
    return {
        "valid": True,
        "e164": phonenumbers.format_number(number, PhoneNumberFormat.E164),
        "international": phonenumbers.format_number(number, PhoneNumberFormat.INTERNATIONAL),
        "country": phonenumbers.region_code_for_number(number),
        "kind": KINDS.get(phonenumbers.number_type(number), "other"),
        "time_zones": list(timezone.time_zones_for_number(number)),
    }
