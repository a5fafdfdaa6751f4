import pytest
import torch
import torch.nn.functional as F

from latentbridge.models.backends import compile_in_place
from latentbridge.models.middle import MiddleTransformer
from latentbridge.models.specs import MiddleSpec


@pytest.mark.slow
def test_compiled_middle_matches_eager_and_keeps_its_state_dict_keys():
    middle = MiddleTransformer(MiddleSpec(latent_dim=32, latent_seq_len=4, num_heads=4, dropout=0.0))
    keys = list(middle.state_dict())
    x = F.normalize(torch.randn(2, 4, 32), dim=-1)
    eager = middle(x)
    compile_in_place(middle, "default")
    assert torch.allclose(middle(x), eager, atol=1e-5)
    assert list(middle.state_dict()) == keys  # no `_orig_mod.` prefix in checkpoints
