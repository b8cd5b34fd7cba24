"""Strict configuration: defaults, unknown keys, ranges, YAML round trip."""

from __future__ import annotations

import pytest

from deeptrack.config import (
    AppearanceConfig,
    HeadConfig,
    RunConfig,
    TrackerConfig,
    from_dict,
    load_yaml,
    to_dict,
)
from deeptrack.errors import ConfigError
from deeptrack.types import AppearanceMemory, AssociationMode, KalmanEngine, PoolingMode


def test_defaults_are_the_papers():
    c = TrackerConfig()
    assert (c.max_cosine_distance, c.max_iou_distance, c.max_age, c.n_init, c.nn_budget) == (
        0.2, 0.7, 30, 3, 100)
    assert c.gating_threshold == pytest.approx(9.4877)
    assert c.appearance_memory is AppearanceMemory.GALLERY
    assert c.kalman is KalmanEngine.BATCHED and c.association is AssociationMode.DEEPSORT
    assert HeadConfig().pooling is PoolingMode.AVG and RunConfig().head == HeadConfig()


def test_modes_are_enums_inside_and_strings_at_the_edge():
    c = TrackerConfig(appearance_memory="EMA", kalman="filterpy")
    assert c.appearance_memory is AppearanceMemory.EMA and c.kalman is KalmanEngine.FILTERPY
    assert to_dict(c)["appearance_memory"] == "ema" and to_dict(c)["kalman"] == "filterpy"
    with pytest.raises(ConfigError, match=r"'kalman' = 'ukf' is not valid; expected one of: "
                                          r"batched, filterpy"):
        TrackerConfig(kalman="ukf")
    with pytest.raises(ConfigError, match="unknown config key.*tracker.pooling"):
        from_dict(RunConfig, {"tracker": {"pooling": "avg"}})  # pooling is the head's


@pytest.mark.parametrize("data, key", [
    ({"tracker": {"max_agee": 3}}, "tracker.max_agee"),
    ({"trackers": {}}, "trackers"),
    ({"tracker": {"max_age": 0}}, "tracker.max_age"),
    ({"tracker": {"max_cosine_distance": -0.1}}, "tracker.max_cosine_distance"),
    ({"tracker": {"max_iou_distance": 1.5}}, "tracker.max_iou_distance"),
    ({"tracker": {"n_init": 2.5}}, "tracker.n_init"),
    ({"head": {"pooling": "median"}}, "head.pooling"),
    ({"head": {"gem_p": 0}}, "head.gem_p"),
    ({"head": {"reduce_dim": 0}}, "head.reduce_dim"),
    ({"tracker": {"kalman": "ukf"}}, "tracker.kalman"),
    ({"tracker": {"association": "bytetrack"}}, "tracker.association"),
    ({"tracker": {"appearance_memory": "lstm"}}, "tracker.appearance_memory"),
    ({"tracker": {"output_max_gap": "yes"}}, "tracker.output_max_gap"),
    ({"appearance": {"roi_size": 0}}, "appearance.roi_size"),
    ({"appearance": {"image_scale": 0}}, "appearance.image_scale"),
    ({"min_confidence": "high"}, "min_confidence"),
])
def test_bad_keys_and_values_name_the_key(data, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        from_dict(RunConfig, data)


def test_round_trip_and_enum_at_the_edge():
    c = from_dict(RunConfig, {"tracker": {"max_age": 10, "appearance_memory": "ema"},
                              "head": {"pooling": "GeM", "gem_p": 6},
                              "appearance": {"backbone": "resnet50_c4"}})
    assert c.head.pooling is PoolingMode.GEM and c.head.gem_p == 6.0
    assert c.tracker.appearance_memory is AppearanceMemory.EMA
    d = to_dict(c)
    assert d["head"]["pooling"] == "gem" and d["tracker"]["appearance_memory"] == "ema"
    assert from_dict(RunConfig, d) == c


def test_yaml_errors_name_the_file(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("tracker:\n  max_age: 5\n")
    assert load_yaml(p).tracker.max_age == 5
    p.write_text("tracker: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_yaml(p)
    p.write_text("tracker:\n  nope: 1\n")
    with pytest.raises(ConfigError, match=r"c\.yaml.*tracker\.nope"):
        load_yaml(p)
    with pytest.raises(ConfigError, match="cannot read"):
        load_yaml(tmp_path / "missing.yaml")


def test_max_age_is_in_frames_unless_a_reference_rate_is_given():
    c = TrackerConfig()
    assert c.max_age_frames(10) == 30 and c.max_age_frames(60) == 30  # the paper: frames
    c = TrackerConfig(max_age=30, reference_fps=30)
    assert c.max_age_frames(30) == 30 and c.max_age_frames(10) == 10
    assert TrackerConfig(max_age=3, reference_fps=30).max_age_frames(5) == 1  # at least 1


def test_appearance_config_defaults():
    assert AppearanceConfig().roi_size == 7
