"""Run modes: `--quick` / `--paper-scale` select one named preset (`args.mode`), presets are
written by keyword, and section V.F's own presets take `--set KEY=VALUE` overrides."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))

import common  # noqa: E402
import section_vf_mask_rcnn as vf  # noqa: E402


@pytest.mark.parametrize(
    ("argv", "mode", "image_size"),
    [([], "default", 256), (["--quick"], "quick", 64), (["--paper-scale"], "paper", 1024)],
)
def test_the_mode_options_select_one_named_scale(argv, mode, image_size):
    args = common.build_parser("test").parse_args(argv)
    assert args.mode == mode
    assert common.SCALES[args.mode].name == mode
    assert common.SCALES[args.mode].image_size == image_size


def test_quick_and_paper_scale_together_are_refused(capsys):
    with pytest.raises(SystemExit):
        common.build_parser("test").parse_args(["--quick", "--paper-scale"])
    assert "argument --paper-scale: not allowed with argument --quick" in capsys.readouterr().err


def test_a_scale_is_written_by_keyword_only():
    quick = common.SCALES["quick"]
    assert (quick.epochs, quick.batch_size, quick.max_images, quick.eval_images) == (1, 4, 12, 4)
    with pytest.raises(TypeError, match="positional"):
        common.Scale("quick", 64, 24, 256, 1, 4, 4, 2, 12, 4)


def test_vf_set_overrides_mode_keys_and_config_fields_separately():
    mode, config = vf.apply_overrides(
        vf.MODES["quick"], ["total=3", "augment=false", "RPN_POSITIVE_IOU=0.5"]
    )
    assert (mode.total, mode.augment, mode.size) == (3, False, 64)
    assert config == {"RPN_POSITIVE_IOU": 0.5}
    assert vf.MODES["quick"].total == 2  # the preset itself is unchanged


def test_vf_epochs_sets_the_total_above_the_heads_stage():
    assert vf.apply_overrides(vf.MODES["default"], [], epochs=10)[0].total == 10
    # heads=4 from --set: --epochs 2 still leaves one epoch after the heads stage
    assert vf.apply_overrides(vf.MODES["quick"], ["heads=4"], epochs=2)[0].total == 5


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("size=0", "--set: `size` must be a positive integer, received 0"),
        ("steps=many", "--set: `steps` must be a positive integer, received 'many'"),
        ("lr=0", "--set: `lr` must be a positive number, received 0"),
        ("augment=1", "--set: `augment` must be true or false, received 1"),
        ("totl=3", "--set 'totl=3': expected KEY=VALUE with KEY one of"),
    ],
)
def test_vf_bad_set_values_are_refused_with_the_key(item, message):
    with pytest.raises(SystemExit) as info:
        vf.apply_overrides(vf.MODES["quick"], [item])
    assert str(info.value).startswith(message)


def test_vf_steps_may_be_none():
    assert vf.apply_overrides(vf.MODES["quick"], ["steps=None"])[0].steps is None
