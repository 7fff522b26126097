"""Quick check that the fused LSTM path gives the step-by-step result on this CUDA machine
(run before a long GPU session; exit 1 and a message when it does not)."""

import sys

import torch

from doping.lm import LanguageModel


def main(device: str = "cuda") -> int:
    torch.manual_seed(0)
    for method, kw in (("dkp", {"cmr": "seq", "cmr_p": 0.3}), ("prune", {}), ("hmd", {})):
        lm = LanguageModel(50, 32, 2, 0.2, method, 4.0, gate_options={}, **kw).to(device)
        tokens = torch.randint(0, 50, (12, 4), device=device)
        lm.train()
        logits, _ = lm(tokens)
        logits.sum().backward()
        lm.eval()
        with torch.no_grad():
            fused, _ = lm(tokens)
            lm.lstm.per_step_calls = True
            stepped, _ = lm(tokens)
            lm.lstm.per_step_calls = False
        err = (fused - stepped).abs().max().item()
        print(f"{method}: fused vs step-by-step max |diff| {err:.2e}", flush=True)
        if not err < 1e-3:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
