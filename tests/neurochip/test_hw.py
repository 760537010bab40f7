"""Hardware specs: bundled chips, loading by name or path, inheritance, and typed errors."""

from pathlib import Path

import pytest
import yaml

import neurochip
from neurochip.core.errors import HardwareSpecError
from neurochip.core.hw import HardwareSpec, available_hw, load_hw


def test_loihi_like_has_loihi_figures() -> None:
    hw = load_hw("loihi_like")
    assert hw.n_cores == 128
    assert hw.mesh.tiles_x * hw.mesh.tiles_y == 32
    assert hw.core.max_neurons == 1024
    assert hw.core.synapse_memory_bits == 128 * 1024 * 8
    assert hw.core.max_input_axons == hw.core.max_output_axons == 4096
    f = hw.formats
    assert (f.u_bits, f.v_bits, f.decay_bits, f.vth_bits, f.bias_mant_bits) == (24, 24, 12, 17, 13)
    assert f.du_range == (-1, 4095) and f.dv_range == (0, 4096)
    assert f.vth_range == (0, 131071) and f.bias_mant_range == (-4096, 4095)
    assert f.bias_exp_range == (0, 7) and f.weight_exp_range == (-8, 7)
    assert f.max_delay == 62
    # Davies 2018 Table 2 costs, counted in 0.1 ns quanta.
    assert hw.timing.cycles("synop") == 35 and hw.timing.cycles("hop_ns") == 65
    assert hw.energy.synop_pj == pytest.approx(23.6) and hw.energy.learn_update_pj == 120
    assert hw.timing.barrier_cycles(1) == 1130 and hw.timing.barrier_cycles(32) == 4650
    assert hw.index_bits == 10


def test_bundled_names_and_inheritance() -> None:
    names = available_hw()
    assert {"loihi_like", "tiny4", "loihi_like_2chip"} <= set(names)
    tiny = load_hw("tiny4")
    assert tiny.n_cores == 4 and tiny.core.max_neurons == 64
    assert tiny.formats == load_hw("loihi_like").formats  # inherited
    two = load_hw("loihi_like_2chip")
    assert two.n_cores == 256 and two.core_position(128) == (1, 8, 0)


def test_core_positions_follow_tiles() -> None:
    hw = load_hw("loihi_like")
    assert hw.core_position(0) == (0, 0, 0)
    assert hw.core_position(3) == (0, 0, 0)  # same tile
    assert hw.core_position(4) == (0, 1, 0)
    assert hw.core_position(32) == (0, 0, 1)
    with pytest.raises(HardwareSpecError, match="core 128"):
        hw.core_position(128)


def test_load_by_path_and_spec_passthrough(tmp_path: Path) -> None:
    src = Path(neurochip.__file__).parents[1] / "hw_configs" / "tiny4.yaml"
    data = yaml.safe_load(src.read_text())
    data["extends"] = str(src.parent / "loihi_like.yaml")
    data["name"] = "mine"
    p = tmp_path / "mine.yaml"
    p.write_text(yaml.safe_dump(data))
    hw = load_hw(p)
    assert hw.name == "mine" and hw.n_cores == 4
    assert load_hw(hw) is hw
    assert hw.spec_hash != load_hw("tiny4").spec_hash


def test_load_reads_a_file_again_only_when_it_or_its_parent_changed(tmp_path: Path) -> None:
    parent = tmp_path / "base.yaml"
    parent.write_text((Path(neurochip.__file__).parents[1] / "hw_configs" / "tiny4.yaml")
                      .read_text())
    child = tmp_path / "child.yaml"
    child.write_text(f"extends: {parent}\nname: child\n")
    first = load_hw(child)
    assert load_hw(child) is first  # unchanged files: the same (immutable) spec
    data = yaml.safe_load(parent.read_text())
    data["core"]["max_neurons"] = 77
    parent.write_text(yaml.safe_dump(data))
    changed = load_hw(child)  # the parent changed: read again
    assert changed.core.max_neurons == 77 and changed.name == "child"
    child.write_text(f"extends: {parent}\nname: chile\n")  # same size, same tick
    assert load_hw(child).name == "chile"


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"core": {"max_neurons": 0}}, "core.max_neurons"),
        ({"core": {"max_neuronz": 5}}, "core.max_neuronz"),
        ({"formats": {"max_delay": 100}}, "formats"),
        ({"mesh": {"io_tile": [9, 0]}}, "mesh"),
        ({"timing": {"synop_ns": 3.55}}, "timing"),
    ],
)
def test_bad_fields_are_named(tmp_path: Path, patch: dict, field: str) -> None:
    base = tmp_path / "bad.yaml"
    patch = dict(patch)
    patch["extends"] = str(Path(neurochip.__file__).parents[1] / "hw_configs" / "loihi_like.yaml")
    base.write_text(yaml.safe_dump(patch))
    with pytest.raises(HardwareSpecError) as ei:
        load_hw(base)
    assert ei.value.field is not None and ei.value.field.startswith(field.split(".")[0])
    assert isinstance(ei.value, ValueError)


def test_unknown_name_missing_file_bad_yaml_and_cycles(tmp_path: Path) -> None:
    with pytest.raises(HardwareSpecError, match=r"unknown hardware 'nochip'.*loihi_like"):
        load_hw("nochip")
    with pytest.raises(HardwareSpecError, match="no such file"):
        load_hw(tmp_path / "absent.yaml")
    bad = tmp_path / "x.yaml"
    bad.write_text("mesh: [unclosed")
    with pytest.raises(HardwareSpecError, match="not valid YAML"):
        load_hw(bad)
    bad.write_text("- a list")
    with pytest.raises(HardwareSpecError, match="mapping"):
        load_hw(bad)
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(f"extends: {b}\n")
    b.write_text(f"extends: {a}\n")
    with pytest.raises(HardwareSpecError, match="circular"):
        load_hw(a)


def test_spec_round_trips_through_dict() -> None:
    hw = load_hw("tiny4")
    again = HardwareSpec.from_dict(hw.to_dict())
    assert again == hw and again.spec_hash == hw.spec_hash


def test_loihi_sanafe_has_sanafe_figures_and_options() -> None:
    hw = load_hw("loihi_sanafe")
    cm = hw.cost_model
    assert cm is not None and cm.core == "pipelined" and cm.noc_contention
    # SANA-FE's detailed timing model with its Loihi link buffers (16 messages)
    assert cm.noc_schedule is not None and cm.noc_schedule.link_buffer_messages == 16
    assert "SANA-FE" in cm.source
    assert hw.timing.cycles("synop") == 38 and hw.energy.spike_out_pj == 111.0
    assert hw.energy.static_mw_per_core == 0.0
    # the barrier table is a step function over tiles in use
    assert [cm.barrier_ns(n) for n in (1, 2, 3, 4, 28, 29, 32)] == [
        600, 1000, 1000, 1400, 1400, 1800, 1800]


def test_specs_without_cost_options_dump_as_before() -> None:
    hw = load_hw("loihi_like")
    assert hw.cost_model is None and "cost_model" not in hw.to_dict()
    assert HardwareSpec.from_dict(hw.to_dict()).spec_hash == hw.spec_hash


@pytest.mark.parametrize("options, field", [
    ({"core": "superscalar"}, "cost_model.core"),
    ({"barrier_table_ns": {}}, "cost_model.barrier_table_ns"),
    ({"barrier_table_ns": {0: 5.0}}, "cost_model.barrier_table_ns"),
    ({"link_message_ns": 0.05}, "<root>"),
    ({"spike_fire_ns": -1.0}, "cost_model.spike_fire_ns"),
    ({"noc_schedule": {"link_buffer_messages": 0}},
     "cost_model.noc_schedule.link_buffer_messages"),
    ({"noc_schedule": {"buffers": 4}}, "cost_model.noc_schedule.buffers"),
])
def test_bad_cost_options_are_named(options: dict, field: str) -> None:
    d = load_hw("loihi_like").to_dict()
    d["cost_model"] = options
    with pytest.raises(HardwareSpecError) as e:
        HardwareSpec.from_dict(d)
    assert e.value.field == field


def test_runtime_terms_name_known_counts() -> None:
    d = load_hw("loihi_like").to_dict()
    d["cost_model"] = {"runtime": {"terms": [{"name": "x", "ns_per": {"synops": 1.0}}]}}
    with pytest.raises(HardwareSpecError, match="unknown count 'synops'") as e:
        HardwareSpec.from_dict(d)
    assert e.value.field == "cost_model.runtime.terms.0.ns_per"
    d["cost_model"] = {"runtime": {"terms": []}}
    with pytest.raises(HardwareSpecError):
        HardwareSpec.from_dict(d)
