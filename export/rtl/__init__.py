"""RTL netlist (:mod:`.netlist`), arithmetic mappers (:mod:`.adders`, :mod:`.requant`), the
unread-bit sink (:mod:`.lint`) and the Verilog printer (:mod:`.verilog`)."""

from .netlist import Module, Signal
from .verilog import print_module

__all__ = ["Module", "Signal", "print_module"]
