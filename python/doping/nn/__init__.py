"""PyTorch modules: the doped Kronecker linear layer, the baselines' structured layers, the
doped LSTM, and the overlay annealing schedule."""

from doping.nn.dkp import DKPLinear, kron_matvec, nearest_kronecker
from doping.nn.lstm import DopedLSTM
from doping.nn.structured import DenseGate, HMDLinear, LowRankLinear, PrunedLinear, make_gate

__all__ = ["DKPLinear", "DenseGate", "DopedLSTM", "HMDLinear", "LowRankLinear", "PrunedLinear", "kron_matvec",
           "make_gate", "nearest_kronecker"]
