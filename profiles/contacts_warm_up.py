"""Warm-up of the "contacts" runtime profile, run once when it is built (worker.toml,
runtime.profiles.contacts.warm_up): what it computes is in the snapshot every job starts from.

phonenumbers builds each region's metadata and compiles its patterns on first use; without
this, a job that parses and validates one number pays for that every time (about 7 ms).
"""

import phonenumbers
from phonenumbers.phonemetadata import PhoneMetadata
from slugify import slugify

PhoneMetadata.load_all()

# The regions whose numbers jobs most likely see; the rest are loaded, and compile their
# patterns on first use.
REGIONS = ("US", "CA", "GB", "IE", "DE", "FR", "ES", "IT", "NL", "BE", "PT", "CH", "AT", "PL",
           "SE", "NO", "DK", "BR", "MX", "AR", "IN", "AU", "NZ", "ZA", "JP", "SG")

for region in REGIONS:
    for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
        example = phonenumbers.example_number_for_type(region, kind)
        if example is None:
            continue
        for fmt in (phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.INTERNATIONAL,
                    phonenumbers.PhoneNumberFormat.NATIONAL):
            text = phonenumbers.format_number(example, fmt)
            number = phonenumbers.parse(text, region)
            phonenumbers.is_valid_number(number)
            phonenumbers.number_type(number)
            phonenumbers.region_code_for_number(number)

slugify("Ünïcödé — warm-up, 123 ÆØÅ ß")
