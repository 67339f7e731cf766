"""AdaLink is a registered peft method after `import adalink`; these fail loudly when a peft upgrade breaks that."""

import os
import subprocess
import sys
from pathlib import Path

import peft
import pytest
from peft.mapping import (
    PEFT_TYPE_TO_CONFIG_MAPPING,
    PEFT_TYPE_TO_PREFIX_MAPPING,
    PEFT_TYPE_TO_TUNER_MAPPING,
)
from peft.peft_model import PeftModel as PeftPeftModel
from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer
from peft.utils import PeftType

import adalink  # noqa: F401 - registers AdaLink with peft
from adalink.integrations.peft_config import AdaLinkPeftConfig
from adalink.integrations.peft_registration import PEFT_TYPE, PREFIX, is_registered
from adalink.integrations.peft_tuner import AdaLinkTuner

SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_registered_in_every_peft_table():
    assert is_registered()
    assert PeftType(PEFT_TYPE) is PeftType.ADALINK and PEFT_TYPE in list(PeftType)
    assert PEFT_TYPE_TO_CONFIG_MAPPING[PeftType.ADALINK] is AdaLinkPeftConfig
    assert PEFT_TYPE_TO_TUNER_MAPPING[PeftType.ADALINK] is AdaLinkTuner
    assert PEFT_TYPE_TO_PREFIX_MAPPING[PeftType.ADALINK] == PREFIX
    assert AdaLinkPeftConfig().peft_type is PeftType.ADALINK


def test_peft_still_has_what_the_registration_and_tuner_rely_on():
    """A peft upgrade that renames one of these breaks AdaLink's front door: this test names which."""
    for name in ("_member_names_", "_member_map_", "_value2member_map_"):
        assert hasattr(PeftType, name), f"PeftType.{name} is gone: peft_registration._add_enum_member needs it"
    overridden = (
        "inject_adapter",
        "set_adapter",
        "delete_adapter",
        "merge_adapter",
        "unmerge_adapter",
        "_unload_and_optionally_merge",
        "_enable_adapter_layers",
        "_pre_injection_hook",
        "_mark_only_adapters_as_trainable",
        "_get_adapter_state_dict",
        "_remove_adapter_name_from_key",
        "_remap_adapter_state_dict_for_load",
    )
    missing = [name for name in overridden if not hasattr(BaseTuner, name)]
    assert not missing, f"peft's BaseTuner lost {missing}"
    for name in ("set_adapter", "enable_adapters", "delete_adapter", "adapter_layer_names", "merged_adapters"):
        assert hasattr(BaseTunerLayer, name), f"peft's BaseTunerLayer lost {name}"
    assert hasattr(PeftPeftModel, "_enable_peft_forward_hooks"), "peft's PeftModel no longer routes adapter_names"
    assert peft.__version__.startswith("0."), f"peft {peft.__version__}: check the registration against it"


IMPORT_ORDERS = {
    "adalink, then peft": "import adalink\nassert 'peft' not in sys.modules, 'adalink imported peft'\nimport peft",
    "peft, then adalink": "import peft\nimport adalink",
    "an integration module first": "import adalink.integrations.peft_checkpoints",
}


@pytest.mark.slow
@pytest.mark.parametrize("order", sorted(IMPORT_ORDERS))
def test_a_fresh_process_registers_whatever_the_import_order(order):
    code = (
        "import sys, warnings\nwarnings.simplefilter('error', RuntimeWarning)\n"
        + IMPORT_ORDERS[order]
        + "\nfrom peft.mapping import PEFT_TYPE_TO_TUNER_MAPPING as TUNERS\n"
        + "assert 'ADALINK' in TUNERS\nprint('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC, "OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]
