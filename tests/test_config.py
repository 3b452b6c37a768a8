"""The config schema: a misspelt key at any level is an error naming it, before any job runs."""
import pytest
import yaml

from conftest import REPO, snakemake, write_config

SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def _object_levels(schema, where="config"):
    """(where, schema) of every object level of the schema, definitions included."""
    if not isinstance(schema, dict):
        return
    if schema.get("type") == "object" or "properties" in schema:
        yield where, schema
    for key, sub in schema.get("properties", {}).items():
        yield from _object_levels(sub, f"{where}.{key}")
    for key, sub in schema.get("definitions", {}).items():
        yield from _object_levels(sub, f"definitions.{key}")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _object_levels(schema["additionalProperties"], f"{where}.<name>")
    if isinstance(schema.get("items"), dict):
        yield from _object_levels(schema["items"], f"{where}[]")


def test_every_object_level_rejects_unknown_keys():
    """New sections must say additionalProperties: false.  The one other form allowed is a map
    (no fixed keys, every value checked by a schema, e.g. synthetic.presets, caption.systems): nothing
    to misspell."""
    levels = dict(_object_levels(SCHEMA))
    assert len(levels) >= 20 and "config.fragment.eval" in levels and "definitions.preset" in levels
    loose = [w for w, s in levels.items()
             if not (s.get("additionalProperties") is False
                     or (isinstance(s.get("additionalProperties"), dict) and "properties" not in s))]
    assert not loose, f"object levels without additionalProperties: false: {loose}"
    maps = sorted(w for w, s in levels.items() if isinstance(s.get("additionalProperties"), dict))
    assert maps == ["config.caption.systems", "config.synthetic.presets"]


def test_config_defaults_pass_the_schema():
    import jsonschema

    jsonschema.validate(yaml.safe_load((REPO / "config.yaml").read_text()), SCHEMA)


DEFAULTS = yaml.safe_load((REPO / "config.yaml").read_text())


@pytest.mark.parametrize("section, key", [
    ("flickr8k", "rot"), ("ingest", "max_skip_fractoin"), ("synthetic", "pressets"),
    ("speech", "fbnak"), ("fragment", "lr_"), ("recall", "k"), ("patterns", "kss"),
])
def test_a_misspelt_key_in_any_section_is_rejected_by_name(section, key):
    import jsonschema

    cfg = {**DEFAULTS, section: {**DEFAULTS[section], key: 1}}
    with pytest.raises(jsonschema.ValidationError, match=f"'{key}' was unexpected"):
        jsonschema.validate(cfg, SCHEMA)


@pytest.mark.parametrize("override, message", [
    ({"fragmnet": {"lr": 0.1}}, "'fragmnet' was unexpected"),  # a misspelt section
    ({"word_corpus": {"source": "kaldi", "kaldi_dri": "/x"}}, "'kaldi_dri' was unexpected"),
    ({"synthetic": {"preset": "tni"}}, "'tni' is not one of the presets ['default', 'flickr8k', 'photo', 'tiny']"),
    ({"patterns": {"table3": {"k": 7}}}, "patterns.table3.k = 7 is not one of patterns.cluster.ks"),
    ({"patterns": {"vad": {"method": "webrtc"}}}, "'webrtc' is not one of ['silero', 'energy']"),
    ({"patterns": {"system": "matchmap"}}, "grounding needs a whole-frame (fc) image tower scored by a dot product"),
])
def test_snakemake_stops_before_any_job_naming_the_key(tmp_path, override, message):
    cfg = write_config(tmp_path / "c.yaml", **override)
    proc = snakemake(tmp_path, "-n", configfile=cfg, check=False)
    assert proc.returncode != 0 and message in proc.stdout + proc.stderr
