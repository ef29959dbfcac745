"""V.C trains the paper's weights, 1:100 included ("1:10 or 1:100 ... did little")."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))
vc = pytest.importorskip("section_vc_weighted_loss")


@pytest.mark.parametrize("name, weight", [("wbce_1_10", 10.0), ("wbce_1_100", 100.0)])
def test_the_papers_tumour_weights(name, weight):
    loss = vc.LOSSES[name][0]()
    assert loss.positive_weight == weight
    assert name in vc.PAPER_LOSSES
