"""Domains of generated tasks ("Domain Attribution" in SandMLE), drawn as one coherent story.

A generated task gets a domain unrelated to its seed, so an agent cannot lean on prior knowledge
of the seed data set; but everything the task names comes from that one domain: the entity a row
or file is, the setting, the feature columns, the target names, the class vocabulary and the
words its documents are written with. Label sets have a kind: ``classes`` are mutually exclusive
outcomes (one per row: multi-class, ordinal and binary tasks), ``findings`` are things that can
co-occur (multi-label tasks), and an audio domain's ``sources`` are sound sources that can be
heard together. :func:`name_problems` is the check that rejects a candidate whose names
contradict each other (``incoherent_names``). Every choice uses the caller's seeded RNG.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Each domain: the row entity and setting, 12 feature columns, exclusive classes, co-occurring
# findings, a binary event, regression targets, and its stories for files, text and series.
# ``terms`` are the domain's own words, from which documents are written (never used as names).
DOMAINS: list[dict] = [
    {"name": "greenhouse", "entity": "greenhouse bay", "setting": "a vertical-farming company",
     "features": ["humidity", "lamp_hours", "root_temp", "nutrient_ec", "co2_ppm", "leaf_area",
                  "water_ph", "fan_speed", "canopy_height", "drip_rate", "shade_ratio", "soil_moisture"],
     "classes": ["healthy", "wilting", "mould", "nutrient_burn", "pest_damage", "stunted"],
     "findings": ["aphids", "mildew", "leaf_curl", "root_rot", "tip_burn", "yellowing"],
     "event": "crop_loss", "target": "yield_index", "targets": ["yield_index", "water_use", "energy_cost"],
     "image": ("leaf-tray photo", "the greenhouse bench cameras"),
     "text": ("grower log entry", "a vertical-farming company"),
     "series": "water_use",
     "terms": ["seedling", "tray", "bench", "nozzle", "trellis", "stem", "petiole", "runner", "sprout",
               "misting", "pruning", "transplant", "substrate", "rockwool", "gutter", "vent", "heater",
               "dehumidifier", "sensor", "bud", "flower", "fruit", "vine", "lettuce", "basil", "tomato",
               "cucumber", "spinach", "kale", "pepper", "irrigation", "fertigation", "pollinator", "bumblebee",
               "sticky", "trap", "spores", "residue", "discolour", "droop", "lush", "vigorous"]},
    {"name": "logistics", "entity": "parcel route", "setting": "a regional courier network",
     "features": ["distance_km", "stops", "driver_tenure", "van_age", "parcel_weight", "traffic_index",
                  "depot_load", "rain_mm", "hour_of_day", "fuel_price", "reroutes", "scan_gaps"],
     "classes": ["on_time", "late", "lost", "returned", "rerouted", "held_at_depot"],
     "findings": ["dented_box", "wet_label", "missing_scan", "wrong_address", "signature_missing", "fragile"],
     "event": "late_delivery", "target": "delay_minutes", "targets": ["delay_minutes", "fuel_litres", "handling_cost"],
     "image": ("parcel label scan", "the depot sorting belt"),
     "text": ("driver note", "a regional courier network"),
     "series": "parcel_volume",
     "terms": ["doorstep", "neighbour", "porch", "gate", "intercom", "buzzer", "lobby", "reception",
               "loading", "bay", "pallet", "trolley", "ramp", "kerb", "driveway", "roadworks", "diversion",
               "junction", "roundabout", "motorway", "congestion", "customer", "recipient", "sender", "courier",
               "handheld", "scanner", "barcode", "manifest", "consignment", "envelope", "crate", "tape",
               "damp", "crushed", "torn", "absent", "refused", "collected", "dispatch", "sorting", "hub"]},
    {"name": "brewery", "entity": "fermentation batch", "setting": "a craft brewery",
     "features": ["wort_gravity", "yeast_age", "mash_temp", "hop_grams", "boil_minutes", "tank_pressure",
                  "chill_rate", "sugar_ratio", "oxygen_ppm", "grain_moisture", "batch_volume", "ambient_temp"],
     "classes": ["lager", "pale_ale", "stout", "sour", "wheat_beer", "porter"],
     "findings": ["diacetyl", "haze", "off_flavour", "overcarbonated", "infection", "low_attenuation"],
     "event": "batch_dumped", "target": "final_abv", "targets": ["final_abv", "bitterness_ibu", "colour_ebc"],
     "image": ("sample glass photo", "the brewery quality lab"),
     "text": ("tasting note", "a craft brewery"),
     "series": "litres_brewed",
     "terms": ["malt", "barley", "caramel", "toffee", "biscuit", "citrus", "grapefruit", "pine", "resin",
               "banana", "clove", "butterscotch", "vinegar", "funk", "foam", "head", "lacing", "body", "finish",
               "aroma", "mouthfeel", "roast", "coffee", "chocolate", "smoke", "hops", "yeast", "sediment",
               "keg", "cask", "bottle", "growler", "tap", "pint", "sip", "crisp", "bitter", "sweet", "tart",
               "dry", "cloudy", "golden"]},
    {"name": "wind_farm", "entity": "turbine reading", "setting": "an offshore wind operator",
     "features": ["wind_speed", "blade_pitch", "rotor_rpm", "gearbox_temp", "yaw_error", "vibration",
                  "nacelle_temp", "grid_freq", "oil_pressure", "ice_index", "wave_height", "tower_strain"],
     "classes": ["normal", "bearing_wear", "pitch_fault", "icing", "sensor_drift", "overheat"],
     "findings": ["blade_erosion", "oil_leak", "loose_bolt", "corrosion", "cable_chafe", "lightning_mark"],
     "event": "unplanned_stop", "target": "power_output", "targets": ["power_output", "blade_stress", "downtime_hours"],
     "image": ("blade inspection tile", "the inspection drones of an offshore wind operator"),
     "audio": ("nacelle microphone clip", "the condition-monitoring team of an offshore wind operator"),
     "sources": ["gear_whine", "bearing_rumble", "blade_whoosh", "yaw_motor", "brake_squeal", "cooling_fan"],
     "text": ("technician report", "an offshore wind operator"),
     "series": "megawatt_hours",
     "terms": ["nacelle", "hub", "spinner", "tower", "flange", "platform", "ladder", "winch", "crane",
               "vessel", "gangway", "harness", "torque", "wrench", "grease", "lubricant", "filter",
               "coupling", "shaft", "generator", "converter", "transformer", "inverter", "anemometer",
               "controller", "alarm", "reset", "shutdown", "restart", "swell", "gust", "squall", "salt",
               "spray", "crack", "rattle", "knock", "hum", "whistle", "smell", "scorch", "drip"]},
    {"name": "library", "entity": "member record", "setting": "a city library system",
     "features": ["member_years", "visits_month", "late_returns", "genre_diversity", "branch_size",
                  "holds_placed", "renewals", "fines_paid", "ebook_share", "event_visits", "age_band_code",
                  "distance_branch"],
     "classes": ["casual", "scholar", "family", "student", "lapsed", "power_reader"],
     "findings": ["fiction", "history", "science", "poetry", "travel", "cookery"],
     "event": "membership_lapse", "target": "loans_next_quarter",
     "targets": ["loans_next_quarter", "late_fees", "holds_next_quarter"],
     "image": ("catalogue card scan", "a city library's digitisation project"),
     "text": ("reader review", "a city library system"),
     "series": "daily_loans",
     "terms": ["chapter", "novel", "author", "plot", "ending", "heroine", "villain", "sequel", "paperback",
               "hardback", "audiobook", "shelf", "borrowed", "renewed", "recommend", "gripping", "slow",
               "charming", "dense", "witty", "moving", "bleak", "cosy", "recipes", "maps", "empire",
               "voyage", "galaxy", "experiment", "verses", "sonnet", "memoir", "diary", "atlas", "kitchen",
               "baking", "mountains", "islands", "battles", "kings", "telescope", "molecules"]},
    {"name": "orchard", "entity": "tree plot", "setting": "an apple orchard cooperative",
     "features": ["trunk_girth", "bloom_days", "frost_hours", "bee_visits", "prune_score", "irrigation",
                  "slope_deg", "soil_nitrogen", "fruit_set", "leaf_spots", "wind_exposure", "tree_age"],
     "classes": ["gala", "fuji", "braeburn", "granny_smith", "honeycrisp", "pink_lady"],
     "findings": ["scab", "codling_moth", "bitter_pit", "sunburn", "hail_damage", "russeting"],
     "event": "frost_loss", "target": "harvest_kg", "targets": ["harvest_kg", "sugar_brix", "blemish_rate"],
     "image": ("fruit photo", "the orchard's grading line"),
     "audio": ("orchard field recording", "the pollinator survey of an apple orchard cooperative"),
     "sources": ["blackbird", "bumblebee", "robin", "woodpecker", "cricket", "starling"],
     "text": ("picker's note", "an apple orchard cooperative"),
     "series": "crates_picked",
     "terms": ["ladder", "bin", "crate", "row", "rootstock", "graft", "blossom", "petal", "bud", "twig",
               "branch", "canopy", "trunk", "bark", "mulch", "grass", "hedge", "windbreak", "netting",
               "sprayer", "tractor", "picker", "stalk", "skin", "flesh", "core", "bruise", "blush", "stripe",
               "crisp", "juicy", "mealy", "sour", "ripe", "green", "windfall", "dew", "frost", "drizzle",
               "sunshine", "wasps", "orchardist"]},
    {"name": "reef_aquarium", "entity": "reef tank", "setting": "a public aquarium",
     "features": ["salinity", "water_temp", "nitrate", "phosphate", "alkalinity", "calcium", "light_par",
                  "flow_rate", "feed_grams", "skimmer_hours", "magnesium", "ph_swing"],
     "classes": ["stable", "algae_bloom", "bleaching", "cloudy_water", "crash", "recovering"],
     "findings": ["hair_algae", "cyanobacteria", "aiptasia", "flatworms", "brown_jelly", "diatoms"],
     "event": "coral_loss", "target": "clarity_score", "targets": ["clarity_score", "ammonia_ppm", "energy_kwh"],
     "image": ("coral close-up", "the aquarium's tank cameras"),
     "audio": ("hydrophone clip", "the marine-sound lab of a public aquarium"),
     "sources": ["snapping_shrimp", "grouper_grunt", "dolphin_whistle", "parrotfish_crunch", "pump_hum", "urchin_scrape"],
     "text": ("aquarist log entry", "a public aquarium"),
     "series": "visitor_count",
     "terms": ["polyp", "frag", "rockwork", "sand", "sump", "refugium", "return", "heater", "chiller",
               "skimmer", "reactor", "dosing", "pump", "powerhead", "glass", "scraper", "siphon", "clownfish",
               "tang", "goby", "wrasse", "anemone", "urchin", "snail", "crab", "shrimp", "feeding", "pellets",
               "mysis", "plankton", "colour", "tissue", "tentacles", "slime", "film", "bubbles", "murky",
               "vivid", "pale", "receding", "extended", "closed"]},
    {"name": "bakery", "entity": "dough batch", "setting": "an industrial bakery",
     "features": ["flour_protein", "hydration", "proof_minutes", "oven_temp", "salt_grams", "starter_age",
                  "mixer_speed", "room_humidity", "butter_ratio", "rest_minutes", "crumb_density", "crust_color"],
     "classes": ["sourdough", "brioche", "rye", "baguette", "focaccia", "bagel"],
     "findings": ["underproofed", "burnt_base", "collapsed", "dense_crumb", "blistered", "cracked_crust"],
     "event": "batch_rejected", "target": "loaf_volume", "targets": ["loaf_volume", "crust_hardness", "moisture_loss"],
     "image": ("loaf cross-section photo", "the bakery's quality line"),
     "audio": ("production-line recording", "the maintenance team of an industrial bakery"),
     "sources": ["mixer_motor", "conveyor_rattle", "oven_fan", "slicer_blade", "proofer_hiss", "packer_clack"],
     "text": ("shift report", "an industrial bakery"),
     "series": "loaves_baked",
     "terms": ["flour", "dough", "starter", "levain", "yeast", "gluten", "knead", "fold", "shape", "score",
               "proof", "oven", "deck", "tray", "tin", "peel", "steam", "crust", "crumb", "loaf", "roll",
               "seeds", "sesame", "poppy", "glaze", "egg", "butter", "sugar", "salt", "water", "rise",
               "spring", "golden", "pale", "chewy", "airy", "tight", "sticky", "slack", "stiff", "batch",
               "shift"]},
]

QUALIFIERS = ["avg", "max", "min", "std", "delta", "rate", "log", "ratio"]
# Column names every domain may use (pitfall columns, the time-series layout, the text column).
SHARED_COLUMNS = frozenset({"id", "date", "series", "promo", "text", "site_code", "label"})
# Sentence frames of documents: each ``{}`` is filled with one of the domain's words (a filler
# word or a hidden keyword); the frame words themselves carry no signal.
FRAMES = ["Checked the {} and the {}.", "Saw {} near the {}.", "The {} beside the {} today.",
          "Noted {}, {} and {}.", "Another {} by the {}.", "{} again after the {}.",
          "Some {} on the {}, nothing else.", "Flagged {} for the next shift.", "Mostly {} with a little {}.",
          "Asked about the {} and {}."]


@dataclass(frozen=True)
class Domain:
    """The story a generated task is told in (every name comes from one entry of DOMAINS)."""

    name: str
    entity: str
    setting: str
    columns: tuple[str, ...]
    labels: tuple[str, ...]   # the label set the task uses (classes, findings or sources)
    target: str
    targets: tuple[str, ...] = ()  # several numeric targets (multi-target regression)
    label_kind: str = "classes"   # classes (exclusive) | findings | sources (co-occurring)
    event: str = ""           # the binary event (``is_<event>``)
    terms: tuple[str, ...] = ()  # the domain's words for documents


def domains_for(modality: str) -> list[dict]:
    """The domains that can tell a task of ``modality`` (audio needs sound sources)."""
    return [d for d in DOMAINS if modality != "audio" or "sources" in d]


def pick_domain(rng: np.random.Generator, n_columns: int, n_labels: int, modality: str,
                label_kind: str = "classes", base: dict | None = None) -> Domain:
    """A domain with ``n_columns`` unique feature names and ``n_labels`` names of ``label_kind``."""
    if base is None:
        pool = domains_for(modality)
        base = pool[int(rng.integers(len(pool)))]
    names = list(base["features"])
    rng.shuffle(names)
    columns: list[str] = names[:n_columns]
    i = 0
    while len(columns) < n_columns:  # more columns than words: qualified names, still unique
        candidate = f"{names[i % len(names)]}_{QUALIFIERS[(i // len(names)) % len(QUALIFIERS)]}"
        if candidate not in columns:
            columns.append(candidate)
        i += 1
    labels = list(base[label_kind])
    rng.shuffle(labels)
    entity, setting = base["entity"], base["setting"]
    if modality in ("image", "audio", "text"):
        entity, setting = base[modality]
    elif modality == "multimodal":
        entity, setting = base["text"]
    target = base["series"] if modality == "time_series" else base["target"]
    event = labels[0] if modality == "audio" else base["event"]
    return Domain(base["name"], entity, setting, tuple(columns), tuple(labels[:n_labels]), target,
                  tuple(base["targets"]), label_kind, event, tuple(base["terms"]))


def label_kind_for(task_type: str, submission: str, modality: str) -> str:
    """Which label set a task's kind needs: co-occurring names for multi-label tasks."""
    if modality == "audio":
        return "sources"
    if task_type == "multilabel":
        return "findings"
    return "classes"  # multi-class, ordinal, binary; one-hot multi-label columns are exclusive too


@lru_cache(maxsize=1)
def _vocab_of() -> dict[str, dict[str, frozenset[str]]]:
    out = {}
    for d in DOMAINS:
        out[d["name"]] = {
            "columns": frozenset(d["features"]) | SHARED_COLUMNS,
            "classes": frozenset(d["classes"]), "findings": frozenset(d["findings"]),
            "sources": frozenset(d.get("sources", ())),
            "targets": frozenset([d["target"], *d["targets"], d["series"]]),
            "events": frozenset([d["event"], *d.get("sources", ())]),
            "stories": frozenset(s for k in ("image", "audio", "text") if k in d for s in d[k])
            | {d["entity"], d["setting"]}}
    return out


def _base_column(name: str, known: frozenset[str]) -> str:
    if name in known:
        return name
    for q in QUALIFIERS:
        if name.endswith("_" + q):
            return name[: -len(q) - 1]
    return name


def name_problems(domain: Domain, *, columns: list[str], classes: list[str], targets: list[str],
                  task_type: str, ordinal: bool = False) -> list[str]:
    """Why a task's names contradict each other (empty when coherent): names from another domain,
    a label set of the wrong kind (co-occurring names for exclusive classes or the reverse),
    duplicate or colliding names, a story from elsewhere."""
    vocab = _vocab_of().get(domain.name)
    if vocab is None:
        return [f"unknown domain {domain.name!r}"]
    problems = []
    if not {domain.entity, domain.setting} <= vocab["stories"]:
        problems.append(f"story {domain.entity!r} at {domain.setting!r} is not of domain {domain.name}")
    foreign = [c for c in columns if _base_column(c, vocab["columns"]) not in vocab["columns"]]
    if foreign:
        problems.append(f"columns {foreign} are not of domain {domain.name}")
    names = [str(c) for c in classes if not re.fullmatch(r"\d+", str(c))]
    want = "findings" if task_type == "multilabel" else "classes"
    own = vocab["sources"] if domain.label_kind == "sources" else vocab[want]
    if names and not set(names) <= own:
        wrong = sorted(set(names) - own)
        kind = "co-occurring" if want == "findings" else "exclusive"
        problems.append(f"labels {wrong} are not {kind} names of domain {domain.name}")
    if ordinal and names:
        problems.append(f"ordinal grades must be 0..K-1, not names {names}")
    if len(set(names)) != len(names):
        problems.append(f"duplicate labels {names}")
    for t in targets:
        base = t[3:] if t.startswith("is_") else t
        if t in names or t == "label":
            continue
        if base not in vocab["targets"] | vocab["events"] | vocab["findings"] | vocab["sources"] | vocab["classes"]:
            problems.append(f"target {t!r} is not of domain {domain.name}")
    clash = set(columns) & set(targets) | set(columns) & set(names)
    if clash:
        problems.append(f"names used as both feature and target: {sorted(clash)}")
    return problems


def document(rng: np.random.Generator, slots: list[str]) -> str:
    """Sentences of the domain's voice: ``slots`` (domain words, hidden keywords among them) fill
    the frames in order, so the words carry the signal and the frames only the tone."""
    out, i = [], 0
    while i < len(slots):
        frame = FRAMES[int(rng.integers(len(FRAMES)))]
        k = frame.count("{}")
        words = [w.replace("_", " ") for w in slots[i:i + k]]
        if len(words) < k:  # the last frame: fill with what is left
            frame = "Also {}." if len(words) == 1 else "Also " + ", ".join(["{}"] * len(words)) + "."
        s = frame.format(*words)
        out.append(s[0].upper() + s[1:])
        i += k
    return " ".join(out)


# Words of description.md's fixed template (generators/writer.py); kept out of text-task
# keywords so a description can never happen to name a hidden keyword.
TEMPLATE_TEXT = """each row describes one entity setting goal classify predict forecast rows test train
files target column columns without sample submission valid required format feature id evaluation
submissions scored lower higher better write probability class names seen numeric predicted
written holds text grey flattened intensities consecutive time steps series value earlier task
label data image multi regression"""


def reserved_words(domain: str | None = None) -> frozenset[str]:
    """Every word a description of a task of ``domain`` (any domain: None) may contain."""
    parts = [TEMPLATE_TEXT]
    for d in DOMAINS:
        if domain is not None and d["name"] != domain:
            continue
        parts += [d["entity"], d["setting"], d["target"], d["event"], d["series"], *d["features"],
                  *d["classes"], *d["findings"], *d["targets"], *d.get("sources", ())]
        parts += [s for k in ("image", "audio", "text") if k in d for s in d[k]]
    text = " ".join(parts)
    return frozenset(w for w in text.lower().replace("_", " ").replace("-", " ").split())
