"""The demo business: its people and its fleet, as plain data (`midas demo`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

EMAIL_DOMAIN = "demo.midas.example"
PASSWORD = "Midas demo passphrase 2026"  # every demo login's; printed at the end


@dataclass(frozen=True)
class Person:
    key: str  # the local part of the email address
    name: str
    role: str  # customer, concierge, admin, super_admin, auditor
    tier: str = "standard"  # customers only
    phone: str | None = None

    @property
    def email(self) -> str:
        return f"{self.key}@{EMAIL_DOMAIN}"


@dataclass(frozen=True)
class Fleet:
    name: str
    category: str
    location: str
    rate: int  # minor units per rate unit (cents)
    attributes: dict[str, Any] = field(default_factory=dict)


OWNER = Person("olivia.sterling", "Olivia Sterling", "super_admin")
STAFF = (
    Person("marcus.hale", "Marcus Hale", "admin"),
    Person("sofia.laurent", "Sofia Laurent", "concierge"),
    Person("karim.haddad", "Karim Haddad", "concierge"),
    Person("helena.brandt", "Helena Brandt", "auditor"),
)
CUSTOMERS = (
    Person("amelia.hart", "Amelia Hart", "customer", "vvip", "+1 305 555 0142"),
    Person("rashid.almansoori", "Rashid Al Mansoori", "customer", "vvip", "+971 50 555 0199"),
    Person("victoria.chen", "Victoria Chen", "customer", "vvip"),
    Person("julian.rothwell", "Julian Rothwell", "customer", "premium"),
    Person("isabella.moreau", "Isabella Moreau", "customer", "premium", "+33 6 55 55 01 23"),
    Person("daniel.okafor", "Daniel Okafor", "customer", "premium"),
    Person("charlotte.king", "Charlotte King", "customer", "premium"),
    Person("ethan.brooks", "Ethan Brooks", "customer"),
    Person("sophia.romano", "Sophia Romano", "customer"),
    Person("liam.walsh", "Liam Walsh", "customer"),
    Person("mia.jensen", "Mia Jensen", "customer"),
    Person("noah.fischer", "Noah Fischer", "customer"),
)

_CAR, _YACHT, _JET, _HOME = "car", "yacht", "jet", "property"

FLEET = (
    Fleet("Ferrari Roma", _CAR, "US-CA", 1_450_00,
          {"seats": 4, "horsepower": 612, "transmission": "automatic", "year": 2025}),
    Fleet("Lamborghini Huracan EVO Spyder", _CAR, "US-FL", 1_650_00,
          {"seats": 2, "horsepower": 631, "convertible": True, "year": 2024}),
    Fleet("Rolls-Royce Cullinan", _CAR, "AE-DU", 1_900_00,
          {"seats": 5, "horsepower": 563, "chauffeur_available": True, "year": 2025}),
    Fleet("Bentley Continental GT Speed", _CAR, "US-NY", 1_350_00,
          {"seats": 4, "horsepower": 650, "year": 2024}),
    Fleet("McLaren 750S", _CAR, "US-NV", 1_800_00,
          {"seats": 2, "horsepower": 740, "year": 2025}),
    Fleet("Porsche 911 Turbo S Cabriolet", _CAR, "US-CA", 1_100_00,
          {"seats": 4, "horsepower": 640, "convertible": True, "year": 2025}),
    Fleet("Mercedes-Maybach S 680", _CAR, "US-NY", 1_250_00,
          {"seats": 4, "horsepower": 621, "chauffeur_available": True, "year": 2025}),
    Fleet("Aston Martin DBS Volante", _CAR, "US-FL", 1_300_00,
          {"seats": 4, "horsepower": 715, "convertible": True, "year": 2023}),
    Fleet("Bugatti Chiron Sport", _CAR, "AE-DU", 4_500_00,
          {"seats": 2, "horsepower": 1479, "top_speed_kmh": 420, "year": 2022}),
    Fleet("Range Rover SV Autobiography", _CAR, "US-NV", 900_00,
          {"seats": 5, "horsepower": 606, "all_wheel_drive": True, "year": 2025}),
    Fleet("Azure Horizon", _YACHT, "US-FL", 6_500_00,
          {"length_m": "48.5", "cabins": 6, "guests": 12, "crew": 10, "year": 2021}),
    Fleet("Sea Sovereign", _YACHT, "AE-DU", 8_900_00,
          {"length_m": "62.0", "cabins": 7, "guests": 12, "crew": 15, "helipad": True}),
    Fleet("Blue Pearl", _YACHT, "US-FL", 3_200_00,
          {"length_m": "35.0", "cabins": 4, "guests": 8, "crew": 6, "year": 2019}),
    Fleet("Nomad", _YACHT, "US-CA", 2_800_00,
          {"length_m": "31.2", "cabins": 4, "guests": 8, "crew": 5, "year": 2018}),
    Fleet("Golden Tide", _YACHT, "AE-DU", 4_100_00,
          {"length_m": "40.0", "cabins": 5, "guests": 10, "crew": 8, "year": 2020}),
    Fleet("Manhattan Star", _YACHT, "US-NY", 2_500_00,
          {"length_m": "28.0", "cabins": 3, "guests": 6, "crew": 4, "year": 2017}),
    Fleet("Silver Wake", _YACHT, "US-CA", 5_400_00,
          {"length_m": "45.0", "cabins": 5, "guests": 10, "crew": 9, "year": 2022}),
    Fleet("Gulfstream G650ER", _JET, "US-NY", 14_500_00,
          {"seats": 16, "range_km": 13_890, "cruise_kmh": 904, "bedrooms": 1}),
    Fleet("Bombardier Global 7500", _JET, "AE-DU", 15_800_00,
          {"seats": 17, "range_km": 14_260, "cruise_kmh": 904, "bedrooms": 1}),
    Fleet("Dassault Falcon 8X", _JET, "US-FL", 11_200_00,
          {"seats": 14, "range_km": 11_945, "cruise_kmh": 850}),
    Fleet("Embraer Praetor 600", _JET, "US-CA", 7_400_00,
          {"seats": 12, "range_km": 7_440, "cruise_kmh": 863}),
    Fleet("Cessna Citation Longitude", _JET, "US-NV", 6_300_00,
          {"seats": 12, "range_km": 6_482, "cruise_kmh": 895}),
    Fleet("Gulfstream G280", _JET, "US-FL", 6_900_00,
          {"seats": 10, "range_km": 6_667, "cruise_kmh": 850}),
    Fleet("Villa Amber, Palm Jumeirah", _HOME, "AE-DU", 30_000_00,
          {"bedrooms": 7, "bathrooms": 9, "guests": 14, "pool": True, "beach": True}),
    Fleet("Casa del Mar, Malibu", _HOME, "US-CA", 18_500_00,
          {"bedrooms": 5, "bathrooms": 6, "guests": 10, "pool": True, "ocean_view": True}),
    Fleet("Bel Air Estate", _HOME, "US-CA", 26_000_00,
          {"bedrooms": 8, "bathrooms": 10, "guests": 16, "pool": True, "cinema": True}),
    Fleet("Star Island Villa", _HOME, "US-FL", 22_000_00,
          {"bedrooms": 6, "bathrooms": 8, "guests": 12, "pool": True, "dock": True}),
    Fleet("Hamptons Shingle House", _HOME, "US-NY", 12_500_00,
          {"bedrooms": 6, "bathrooms": 6, "guests": 12, "pool": True, "tennis": True}),
    Fleet("Tribeca Penthouse", _HOME, "US-NY", 9_500_00,
          {"bedrooms": 4, "bathrooms": 5, "guests": 8, "terrace_sqm": 180}),
    Fleet("Red Rock Retreat", _HOME, "US-NV", 7_800_00,
          {"bedrooms": 5, "bathrooms": 5, "guests": 10, "pool": True, "desert_view": True}),
)
