"""Domain stories and column names for generated tasks ("Domain Attribution" in SandMLE).

A generated task gets a new domain unrelated to its seed, so an agent cannot lean on prior
knowledge of the seed data set. Everything here is chosen with the caller's seeded RNG.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DOMAINS: list[dict] = [
    {"name": "greenhouse", "entity": "greenhouse bay", "setting": "a vertical-farming company",
     "features": ["humidity", "lamp_hours", "root_temp", "nutrient_ec", "co2_ppm", "leaf_area",
                  "water_ph", "fan_speed", "canopy_height", "drip_rate", "shade_ratio", "soil_moisture"],
     "labels": ["healthy", "wilting", "mould", "nutrient_burn", "pest", "stunted"],
     "target": "yield_index", "targets": ["yield_index", "water_use", "energy_cost"]},
    {"name": "logistics", "entity": "parcel route", "setting": "a regional courier network",
     "features": ["distance_km", "stops", "driver_tenure", "van_age", "parcel_weight", "traffic_index",
                  "depot_load", "rain_mm", "hour_of_day", "fuel_price", "reroutes", "scan_gaps"],
     "labels": ["on_time", "late", "lost", "returned", "damaged", "rerouted"],
     "target": "delay_minutes", "targets": ["delay_minutes", "fuel_litres", "handling_cost"]},
    {"name": "brewery", "entity": "fermentation batch", "setting": "a craft brewery",
     "features": ["wort_gravity", "yeast_age", "mash_temp", "hop_grams", "boil_minutes", "tank_pressure",
                  "chill_rate", "sugar_ratio", "oxygen_ppm", "grain_moisture", "batch_volume", "ambient_temp"],
     "labels": ["lager", "ale", "stout", "sour", "wheat", "porter"],
     "target": "final_abv", "targets": ["final_abv", "bitterness_ibu", "colour_ebc"]},
    {"name": "wind_farm", "entity": "turbine reading", "setting": "an offshore wind operator",
     "features": ["wind_speed", "blade_pitch", "rotor_rpm", "gearbox_temp", "yaw_error", "vibration",
                  "nacelle_temp", "grid_freq", "oil_pressure", "ice_index", "wave_height", "tower_strain"],
     "labels": ["normal", "bearing_wear", "pitch_fault", "icing", "sensor_drift", "overheat"],
     "target": "power_output", "targets": ["power_output", "blade_stress", "downtime_hours"]},
    {"name": "library", "entity": "loan record", "setting": "a city library system",
     "features": ["member_years", "visits_month", "late_returns", "genre_diversity", "branch_size",
                  "holds_placed", "renewals", "fines_paid", "ebook_share", "event_visits", "age_band_code",
                  "distance_branch"],
     "labels": ["casual", "scholar", "family", "student", "lapsed", "power_reader"],
     "target": "loans_next_quarter", "targets": ["loans_next_quarter", "late_fees", "holds_next_quarter"]},
    {"name": "bakery", "entity": "dough batch", "setting": "an industrial bakery",
     "features": ["flour_protein", "hydration", "proof_minutes", "oven_temp", "salt_grams", "starter_age",
                  "mixer_speed", "room_humidity", "butter_ratio", "rest_minutes", "crumb_density", "crust_color"],
     "labels": ["sourdough", "brioche", "rye", "baguette", "focaccia", "bagel"],
     "target": "loaf_volume", "targets": ["loaf_volume", "crust_hardness", "moisture_loss"]},
    {"name": "satellite", "entity": "telemetry window", "setting": "a small-satellite operator",
     "features": ["battery_v", "panel_current", "gyro_drift", "temp_core", "link_margin", "orbit_phase",
                  "magnetometer", "wheel_rpm", "packet_loss", "radiation_dose", "heater_duty", "star_tracker"],
     "labels": ["nominal", "safe_mode", "eclipse", "desaturation", "downlink", "anomaly"],
     "target": "power_margin", "targets": ["power_margin", "thermal_margin", "link_budget"]},
    {"name": "orchard", "entity": "tree plot", "setting": "an apple orchard cooperative",
     "features": ["trunk_girth", "bloom_days", "frost_hours", "bee_visits", "prune_score", "irrigation",
                  "slope_deg", "soil_nitrogen", "fruit_set", "leaf_spots", "wind_exposure", "tree_age"],
     "labels": ["gala", "fuji", "braeburn", "granny", "honeycrisp", "pink_lady"],
     "target": "harvest_kg", "targets": ["harvest_kg", "sugar_brix", "blemish_rate"]},
    {"name": "esports", "entity": "match", "setting": "an amateur esports league",
     "features": ["apm", "ping_ms", "gold_diff", "wards", "objectives", "deaths", "assists_rate",
                  "draft_score", "practice_hours", "team_age", "comeback_count", "tilt_index"],
     "labels": ["win", "loss", "draw", "forfeit", "overtime", "remake"],
     "target": "match_rating", "targets": ["match_rating", "viewer_peak", "kill_share"]},
    {"name": "aquarium", "entity": "tank survey", "setting": "a public aquarium",
     "features": ["salinity", "nitrate", "light_lux", "flow_rate", "coral_cover", "fish_count",
                  "feeding_grams", "water_temp", "algae_index", "oxygen_sat", "alkalinity", "turbidity"],
     "labels": ["stable", "bloom", "bleaching", "cloudy", "crash", "recovering"],
     "target": "clarity_score", "targets": ["clarity_score", "ammonia_ppm", "energy_kwh"]},
]

TEXT_STORIES = [("support ticket", "a software help desk"), ("field note", "a wildlife survey"),
                ("product review", "an online hardware store"), ("lab memo", "a materials laboratory"),
                ("ship log entry", "a coastal ferry company"), ("forum post", "a gardening community")]
IMAGE_STORIES = [("thermal tile", "a building-inspection drone"), ("wafer patch", "a chip fab"),
                 ("cell micrograph", "a pathology lab"), ("radar return", "a weather service"),
                 ("sonar frame", "a marine survey"), ("fabric scan", "a textile mill")]
AUDIO_STORIES = [("hydrophone clip", "a marine-mammal observatory"), ("field recording", "a forest bio-acoustics survey"),
                 ("machine recording", "a factory condition-monitoring team"),
                 ("microphone clip", "a wetland monitoring station")]
SERIES_STORIES = [("daily visitors", "a science museum"), ("kiln temperature", "a ceramics studio"),
                  ("river level", "a flood-warning service"), ("ticket sales", "a regional theatre"),
                  ("energy demand", "a university campus"), ("water usage", "a hotel chain")]
QUALIFIERS = ["avg", "max", "min", "std", "delta", "rate", "log", "ratio"]


@dataclass(frozen=True)
class Domain:
    """The story a generated task is told in."""

    name: str
    entity: str
    setting: str
    columns: tuple[str, ...]
    labels: tuple[str, ...]
    target: str
    targets: tuple[str, ...] = ()  # several numeric targets (multi-target regression)


def pick_domain(rng: np.random.Generator, n_columns: int, n_labels: int, modality: str) -> Domain:
    """A domain with ``n_columns`` unique feature names and ``n_labels`` class names."""
    base = DOMAINS[int(rng.integers(len(DOMAINS)))]
    names = list(base["features"])
    rng.shuffle(names)
    columns: list[str] = names[:n_columns]
    i = 0
    while len(columns) < n_columns:  # more columns than words: qualified names, still unique
        candidate = f"{names[i % len(names)]}_{QUALIFIERS[(i // len(names)) % len(QUALIFIERS)]}"
        if candidate not in columns:
            columns.append(candidate)
        i += 1
    labels = list(base["labels"])
    rng.shuffle(labels)
    entity, setting = base["entity"], base["setting"]
    stories = {"text": TEXT_STORIES, "image": IMAGE_STORIES, "time_series": SERIES_STORIES,
               "audio": AUDIO_STORIES}.get(modality)
    if stories:
        entity, setting = stories[int(rng.integers(len(stories)))]
    target = entity.replace(" ", "_") if modality == "time_series" else base["target"]
    return Domain(base["name"], entity, setting, tuple(columns), tuple(labels[:n_labels]), target,
                  tuple(base["targets"]))

# Words of description.md's fixed template (generators/writer.py); kept out of text-task
# keywords so a description can never happen to name a hidden keyword.
TEMPLATE_TEXT = """each row describes one entity setting goal classify predict forecast rows test train
files target column columns without sample submission valid required format feature id evaluation
submissions scored lower higher better write probability class names seen numeric predicted
written holds text grey flattened intensities consecutive time steps series value earlier task
label data image multi regression"""


def reserved_words() -> frozenset[str]:
    """Every word a description may contain outside the task's own column names."""
    text = TEMPLATE_TEXT + " " + " ".join(
        " ".join([d["entity"], d["setting"], d["target"], *d["features"], *d["labels"]]) for d in DOMAINS)
    text += " " + " ".join(" ".join([*d["targets"]]) for d in DOMAINS)
    text += " " + " ".join(" ".join(s) for s in TEXT_STORIES + IMAGE_STORIES + SERIES_STORIES + AUDIO_STORIES)
    return frozenset(w for w in text.lower().replace("_", " ").replace("-", " ").split())
