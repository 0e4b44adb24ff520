"""``heatq.convert(model, example_input)``: a user's own module of heatq's quantized layers (not
heatq's QNet) -> the exact integer graph.  The reference is the module's own quantized forward
pass (in float64, where its arithmetic on these integers is exact): every step's output and
the module's outputs equal the interpreter's integers; what cannot be converted is refused by
name."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn

import heatq
from heatq.data import load_dataset
from heatq.errors import UserError
from heatq.ir import Op, run
from heatq.quant import Flatten, MaxPool, QConv2d, QLinear, QReLU, QuantStep

IN_FRAC = 4  # the user's input: pixels >> 4 (0..15) at binary point 4


class Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, w_bits: int, a_bits: int) -> None:
        super().__init__()
        self.conv = QConv2d(c_in, c_out, 3, w_bits)
        self.act = QReLU(a_bits)

    def forward(self, x, frac):
        x, frac = self.conv(x, frac)
        return self.act(x, frac)


class UserNet(nn.Module):
    """Two conv blocks (3-bit and 4-bit), a pool, flatten, a hidden layer and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.b1 = Block(1, 6, 3, 3)
        self.pool = MaxPool()
        self.b2 = Block(6, 8, 4, 4)
        self.flat = Flatten()
        self.hidden = QLinear(8 * 4 * 4, 16, 4)
        self.hidden_act = QReLU(4)
        self.head = QLinear(16, 10, 5)

    def forward(self, x):
        y, f = self.b1(x, IN_FRAC)
        y, f = self.pool(y, f)
        y, f = self.b2(y, f)
        y, f = self.flat(y, f)
        y, f = self.hidden(y, f)
        y, f = self.hidden_act(y, f)
        y, f = self.head(y, f)
        return y


def _digits():
    ds = load_dataset("digits")
    x = (ds.x_train[:, None] >> 4).astype(np.float32) / 2 ** IN_FRAC
    xt = (ds.x_test[:, None] >> 4).astype(np.float32) / 2 ** IN_FRAC
    return torch.from_numpy(x), torch.from_numpy(ds.y_train), torch.from_numpy(xt)


@pytest.fixture(scope="module")
def trained():
    """UserNet after a few QAT steps on sklearn's digits (8x8), in eval mode."""
    torch.manual_seed(0)
    x, y, xt = _digits()
    net = UserNet()
    for m in net.modules():
        if isinstance(m, QuantStep):
            m.mode = "quant"
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for i in range(60):
        idx = torch.randint(0, len(x), (64,))
        loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval(), xt


def _module_integers(net: nn.Module, x: torch.Tensor) -> dict[str, np.ndarray]:
    """Every step's output as integers (``y * 2**frac``), from the module's own forward pass
    in float64 (exact), by the step's qualified name; ``"<output>"`` is the module's output."""
    m = copy.deepcopy(net).double()
    seen: dict[str, np.ndarray] = {}

    def hook(name):
        def record(_mod, _inp, out):
            y, frac = out
            v = y.detach().numpy() * 2.0 ** frac
            assert np.array_equal(v, np.rint(v)), name
            seen[name] = np.rint(v).astype(np.int64)
        return record

    for name, mod in m.named_modules():
        if isinstance(mod, QuantStep):
            mod.register_forward_hook(hook(name))
    with torch.no_grad():
        seen["<output>"] = m(x.double()).numpy()
    return seen


def test_user_module_equals_its_own_forward(trained):
    net, xt = trained
    graph = heatq.convert(net, xt[:1])
    names = [n.name for n in graph.nodes]
    assert names == ["input", "b1.conv", "b1.act", "pool", "b2.conv", "b2.act", "flat",
                     "hidden", "hidden_act", "head"]
    assert graph.nodes[0].type.frac == IN_FRAC and (graph.nodes[0].lo, graph.nodes[0].hi) == (0, 15)
    assert [graph.nodes[o].name for o in graph.outputs] == ["head"]
    q = np.rint(xt.double().numpy() * 2 ** IN_FRAC).astype(np.int64)
    values = run(graph, q, trace=True)
    ref = _module_integers(net, xt)
    for node in graph.nodes[1:]:
        assert np.array_equal(values[node.id], ref[node.name]), node.name
    head = graph.by_name("head")
    assert np.array_equal(values[head.id] * 2.0 ** -head.type.frac, ref["<output>"])
    assert graph.meta["weight_bits"] == {"b1.conv": 3, "b2.conv": 4, "hidden": 4, "head": 5}
    assert len(q) >= 300 and len({int(v) for v in values[head.id].ravel()}) > 10


class _Plain(nn.Module):
    def __init__(self, extra: str) -> None:
        super().__init__()
        self.fc = QLinear(4, 3, 4)
        self.act = QReLU(4)
        self.relu = nn.ReLU()
        self.extra = extra

    def forward(self, x):
        y, f = self.fc(x, 0)
        if self.extra == "relu":
            y = self.relu(y)
        elif self.extra == "add":
            y = y + y
        y, f = self.act(y, f)
        return y


@pytest.mark.parametrize("extra, needle", [
    ("relu", "node 'relu' (call_module relu): not a heatq quantized layer"),
    ("add", "node 'add' (call_function add): heatq.convert handles only heatq.quant steps"),
])
def test_refuses_what_it_cannot_convert(extra, needle):
    net = _Plain(extra)
    for m in net.modules():
        if isinstance(m, QuantStep):
            m.mode = "quant"
    net.eval()
    with pytest.raises(UserError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        heatq.convert(net, torch.zeros(1, 4))


def test_refuses_float_mode_and_training_mode():
    net = _Plain("none")
    with pytest.raises(UserError, match="training mode"):
        heatq.convert(net, torch.zeros(1, 4))
    net.eval()
    with pytest.raises(UserError, match="layer 'fc' is in float mode"):
        heatq.convert(net, torch.zeros(1, 4))
    net.fc.mode = net.act.mode = "quant"
    graph = heatq.convert(net, torch.zeros(1, 4), input_range=(-8, 7))
    assert [n.op for n in graph.nodes] == [Op.INPUT, Op.DENSE, Op.REQUANT]
    assert (graph.nodes[0].lo, graph.nodes[0].hi) == (-8, 7)
