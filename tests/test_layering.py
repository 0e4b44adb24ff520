"""Data flows one way: nothing downstream of the IR imports torch."""

import subprocess
import sys


def test_ir_and_emitters_do_not_import_torch():
    code = ("import sys, heatq.ir, heatq.ir.interp, heatq_export.cli, heatq_export.build; "
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"
